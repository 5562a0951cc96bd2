package workbench.jvm;

import java.lang.management.ManagementFactory;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/** NMT read in-process through the DiagnosticCommand MBean: about 0.1 ms, where jcmd starts a JVM of its own. */
public final class NativeMemory {
    private static final String[] SIGNATURE = {String[].class.getName()};
    private static final ObjectName DIAGNOSTIC_COMMAND;

    static {
        try {
            DIAGNOSTIC_COMMAND = new ObjectName("com.sun.management:type=DiagnosticCommand");
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private NativeMemory() {}

    /** The text of {@code VM.native_memory <args>}, e.g. {@code summary scale=KB}. */
    public static String query(String... args) throws Exception {
        return command("vmNativeMemory", args);
    }

    /**
     * The diagnostic-command path (MBean server, DiagnosticCommand MBean, the JDK's Java side of it) taken
     * {@code times} with the cheap {@code VM.version} and {@code VM.uptime -date}: HotSpot compiles it (C2 as well)
     * now, before the baseline, rather than during a later snapshot (whose compiler arenas then showed as NMT Arena
     * Chunk +512 KiB). Half the calls carry an argument: the JDK's wrapper joins the arguments in a loop, and code
     * compiled from argument-less calls only was made not entrant at the first NMT query ({@code summary
     * scale=b}), then compiled again (C1, then C2: NMT Compiler +1.6-5.3 MB) during the steps.
     */
    public static void warmUp(int times) throws Exception {
        for (int i = 0; i < times; i++) {
            if ((i & 1) == 0) {
                command("vmVersion");
            } else {
                command("vmUptime", "-date");
            }
        }
    }

    /**
     * The text of another diagnostic command, by its MBean operation name: {@code systemMap} (JDK 21+),
     * {@code compilerCodecache}, {@code vmMetaspace}; throws where this JDK has no such command.
     */
    public static String command(String operation, String... args) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        return (String) server.invoke(DIAGNOSTIC_COMMAND, operation, new Object[] {args}, SIGNATURE);
    }
}
