package workbench.jvm;

import java.lang.management.ManagementFactory;
import java.util.Map;
import workbench.agent.DirectDiagnosticCommand;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * NMT and the JVM's other diagnostic commands read in-process. Directly through HotSpot's DiagnosticCommandImpl
 * when the JVM opens it to this class (the worker's {@code --add-opens}, workbench/run/jdk.py): the first call
 * through the DiagnosticCommand MBean spends 150-300 ms building the platform MBean server. Otherwise, and for a
 * command not named below, through the MBean (about 0.1 ms a call once it is built); jcmd would start a JVM of its
 * own.
 */
public final class NativeMemory {
    private static final String[] SIGNATURE = {String[].class.getName()};
    private static final ObjectName DIAGNOSTIC_COMMAND;
    /** The MBean's operation names of the commands asked for, and the commands they stand for. */
    private static final Map<String, String> COMMANDS = Map.of(
            "vmNativeMemory", "VM.native_memory",
            "systemMap", "System.map",
            "compilerCodecache", "Compiler.codecache",
            "vmMetaspace", "VM.metaspace",
            "vmVersion", "VM.version",
            "vmUptime", "VM.uptime");
    private static boolean directTried;
    private static DirectDiagnosticCommand diagnosticCommand;

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
     * The diagnostic-command path the snapshots take (HotSpot's directly, or the MBean where it is not open)
     * taken {@code times} with the cheap {@code VM.version} and {@code VM.uptime -date}: HotSpot compiles it (C2 as well)
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
        String name = COMMANDS.get(operation);
        DirectDiagnosticCommand direct = name != null ? direct() : null;
        if (direct != null) {
            // As the MBean would: the command's own exception (an unknown command on this JDK, bad arguments).
            return direct.execute(args.length == 0 ? name : name + " " + String.join(" ", args));
        }
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        return (String) server.invoke(DIAGNOSTIC_COMMAND, operation, new Object[] {args}, SIGNATURE);
    }

    /** HotSpot's DiagnosticCommandImpl.executeDiagnosticCommand; null (the MBean is used) when the JVM does not open
     * it to this class or this JDK has no such method. */
    private static synchronized DirectDiagnosticCommand direct() {
        if (directTried) {
            return diagnosticCommand;
        }
        directTried = true;
        Module jdkManagement = ModuleLayer.boot().findModule("jdk.management").orElse(null);
        Module javaManagement = ManagementFactory.class.getModule();
        Module self = NativeMemory.class.getModule();
        if (jdkManagement == null || !javaManagement.isOpen("sun.management", self)
                || !jdkManagement.isOpen("com.sun.management.internal", self)) {
            return null;
        }
        diagnosticCommand = DirectDiagnosticCommand.open(jdkManagement);
        return diagnosticCommand;
    }
}
