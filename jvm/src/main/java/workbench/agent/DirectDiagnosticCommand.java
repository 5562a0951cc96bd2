package workbench.agent;

import java.lang.management.ManagementFactory;
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;

/**
 * HotSpot's DiagnosticCommandImpl, called directly (no platform MBean server: building it costs 150-300 ms). Its
 * packages must be open to the caller first: the worker's JVM opens them with {@code --add-opens}, the agent through
 * Instrumentation. JDK classes only, as the agent must be.
 */
public final class DirectDiagnosticCommand {
    private final Object command;
    private final Method execute;

    private DirectDiagnosticCommand(Object command, Method execute) {
        this.command = command;
        this.execute = execute;
    }

    /** The direct path, or null where this JDK's internals differ (callers then use the MBean). */
    public static DirectDiagnosticCommand open(Module jdkManagement) {
        Module javaManagement = ManagementFactory.class.getModule();
        try {
            // Its static initializer loads the native library the diagnostic command lives in.
            Class.forName("com.sun.management.internal.PlatformMBeanProviderImpl", true,
                    jdkManagement.getClassLoader());
            Method vmManagement = Class.forName("sun.management.ManagementFactoryHelper", true,
                    javaManagement.getClassLoader()).getDeclaredMethod("getVMManagement");
            vmManagement.setAccessible(true);
            Class<?> impl = Class.forName("com.sun.management.internal.DiagnosticCommandImpl", true,
                    jdkManagement.getClassLoader());
            Constructor<?> constructor = impl.getDeclaredConstructor(Class.forName("sun.management.VMManagement",
                    false, javaManagement.getClassLoader()));
            constructor.setAccessible(true);
            Method execute = impl.getDeclaredMethod("executeDiagnosticCommand", String.class);
            execute.setAccessible(true);
            Object command = constructor.newInstance(vmManagement.invoke(null));
            execute.invoke(command, "help"); // fails here, not at a snapshot, when the native method is missing
            return new DirectDiagnosticCommand(command, execute);
        } catch (Throwable unavailable) {
            return null; // another JDK's internals: the MBean it is
        }
    }

    /** The command line's text, e.g. {@code VM.native_memory summary}; the command's own exception unwrapped. */
    public String execute(String line) throws Exception {
        try {
            return (String) execute.invoke(command, line);
        } catch (java.lang.reflect.InvocationTargetException thrown) {
            Throwable cause = thrown.getCause();
            throw cause instanceof Exception ? (Exception) cause : thrown;
        }
    }
}
