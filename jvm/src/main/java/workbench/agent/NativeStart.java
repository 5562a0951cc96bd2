package workbench.agent;

import java.nio.charset.StandardCharsets;

/**
 * The agent as {@code workbench exec} starts it: from the native agent {@code libworkbench-jvmagent.so}
 * (native/probe/jvm_agent.c) at VMInit, where {@code -javaagent}'s premain would run, but without the module
 * java.instrument that {@code -javaagent} resolves into the program's boot layer (which costs a JVM its archived
 * module graph: +30-37 ms of start-up here). The native agent serves the socket itself (ProbeServer's protocol) and
 * holds the program's start; it calls into Java only for {@link #stats}. {@link #addOpens} and {@link #exiting} are
 * its natives, registered before {@link #started} is called.
 */
public final class NativeStart {
    /** True once the native agent has registered {@link #addOpens}. */
    private static volatile boolean opener;

    private NativeStart() {}

    /** JVMTI AddModuleOpens: {@code module} opens {@code packageName} to {@code to}; IllegalStateException if not. */
    static native void addOpens(Module module, String packageName, Module to);

    /** The native agent's exit hold: tells the clients waiting with {@code await-exit}, holds the exit for them until
     * {@code release-exit} (at most {@code -Dworkbench.agent.exit-hold}), then removes the socket's file. */
    private static native void exiting();

    static boolean canOpen() {
        return opener;
    }

    /**
     * Called by the native agent at VMInit on the thread that will run main, once its socket is bound, with the
     * process's id: registers the exit hold, and in a JVM {@code held} for a start snapshot pays the first
     * {@code stats} reply's one-time costs now (the native agent then holds the program until {@code release}).
     */
    public static void started(boolean held, long pid) {
        opener = true;
        Stats.nativePid = pid;
        ProbeAgent.serving(); // a later attach (agentmain) must not start a second server on this socket
        // A class, not a lambda (see ProbeAgent.start).
        Runtime.getRuntime().addShutdownHook(new Thread(new Runnable() {
            @Override
            public void run() {
                exiting();
            }
        }, "workbench-agent-exit"));
        if (held) {
            Stats.warmUp();
        }
    }

    /** The {@code stats} reply's line as the native agent's server thread sends it. */
    static byte[] stats() {
        return ProbeServer.respond("stats").concat("\n").getBytes(StandardCharsets.UTF_8);
    }
}
