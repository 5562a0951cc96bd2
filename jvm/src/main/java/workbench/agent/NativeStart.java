package workbench.agent;

/**
 * The agent as {@code workbench exec} starts it: from the native agent {@code libworkbench-jvmagent.so}
 * (native/probe/jvm_agent.c) at VMInit, where {@code -javaagent}'s premain would run, but without the module
 * java.instrument that {@code -javaagent} resolves into the program's boot layer (which costs a JVM its archived
 * module graph: +30-37 ms of start-up here). {@link #addOpens} is that native agent's, registered before
 * {@link #premain} is called: it opens a package as Instrumentation's redefineModule would.
 */
public final class NativeStart {
    /** True once the native agent has registered {@link #addOpens}. */
    private static volatile boolean opener;

    private NativeStart() {}

    /** JVMTI AddModuleOpens: {@code module} opens {@code packageName} to {@code to}; IllegalStateException if not. */
    static native void addOpens(Module module, String packageName, Module to);

    static boolean canOpen() {
        return opener;
    }

    /** Called by the native agent on the thread that will run main; holds it as premain does. */
    public static void premain(String args) {
        opener = true;
        ProbeAgent.startHeld(args);
    }
}
