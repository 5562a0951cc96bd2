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
     * The text of another diagnostic command, by its MBean operation name: {@code systemMap} (JDK 21+),
     * {@code compilerCodecache}, {@code vmMetaspace}; throws where this JDK has no such command.
     */
    public static String command(String operation, String... args) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        return (String) server.invoke(DIAGNOSTIC_COMMAND, operation, new Object[] {args}, SIGNATURE);
    }
}
