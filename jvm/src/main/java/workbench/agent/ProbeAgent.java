package workbench.agent;

import java.lang.instrument.Instrumentation;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A Java agent that lets the workbench read any JVM's memory from outside: {@code -javaagent:<the project jar>}
 * (optionally {@code =dir=<path>}) or attached later. It starts one daemon thread that serves a Unix domain socket
 * at {@code <dir>/agent-<pid>.sock}; see {@link ProbeServer} for the protocol and {@link ProbeDirectory} for where
 * the socket lives and why it is safe. JDK classes only, so it works in any program; it never throws into it.
 */
public final class ProbeAgent {
    private static final AtomicBoolean STARTED = new AtomicBoolean();
    /** Counted down by a client's {@code release}, or when the server cannot run: ends premain's hold. */
    static final CountDownLatch RELEASE = new CountDownLatch(1);
    /** {@code -Dworkbench.agent.hold=MS}: premain waits up to MS for {@code release}, so a first snapshot can be
     * taken before the program's main runs. */
    private static final String HOLD_PROPERTY = "workbench.agent.hold";
    /** {@code -Dworkbench.agent.exit-hold=MS}: at the JVM's exit, while a client waits with {@code await-exit}, the
     * agent's shutdown hook holds the exit up to MS for {@code release-exit}, so a last snapshot of every layer (NMT
     * included) is taken before the JVM tears it down. */
    static final long EXIT_HOLD_MILLIS = Long.getLong("workbench.agent.exit-hold", 0L);
    /** Counted down when the JVM starts to exit (the agent's shutdown hook): answers {@code await-exit}. */
    static final CountDownLatch EXITING = new CountDownLatch(1);
    /** Counted down by {@code release-exit}, or when the waiting client has gone: ends the exit hold. */
    static final CountDownLatch EXIT_RELEASE = new CountDownLatch(1);
    /** Clients waiting with {@code await-exit}; without one the exit is not held. */
    static final java.util.concurrent.atomic.AtomicInteger EXIT_WAITERS = new java.util.concurrent.atomic.AtomicInteger();

    private ProbeAgent() {}

    /** The server started and, with {@code -Dworkbench.agent.hold}, the calling thread (the one that runs main)
     * held until {@code release}. */
    public static void premain(String args, Instrumentation instrumentation) {
        Stats.instrumentation = instrumentation;
        start(args);
        long holdMillis = Long.getLong(HOLD_PROPERTY, 0L);
        if (holdMillis > 0) {
            // The first snapshot comes next: its reply's one-time costs are paid here, while the server thread
            // starts its socket on the other core, instead of after it while the program waits. First the class
            // that socket needs whose initializer seeds a SecureRandom (the security providers loaded: 12-15 ms),
            // while the server thread checks its directory.
            initialize("sun.nio.ch.UnixDomainSockets");
            Stats.warmUp();
            try {
                RELEASE.await(holdMillis, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    public static void agentmain(String args, Instrumentation instrumentation) {
        Stats.instrumentation = instrumentation;
        start(args);
    }

    /** A JDK class initialized now (Class.forName needs no export), or left to its first use where it cannot be. */
    private static void initialize(String name) {
        try {
            Class.forName(name, true, null);
        } catch (Throwable otherJdk) {
            // not there on this JDK: the server thread pays it, as before
        }
    }

    /** Another server (the native agent's, {@link NativeStart}) serves this JVM: {@link #start} does nothing. */
    static void serving() {
        STARTED.set(true);
    }

    /** Starts the server thread once per JVM; everything that can fail happens on that thread. */
    static void start(String args) {
        try {
            if (!STARTED.compareAndSet(false, true)) {
                return;
            }
            // A class, not a lambda: the first lambda of a JVM bootstraps the lambda machinery, in the program's
            // start (held JVMs wait for this thread's socket); so are ProbeServer's.
            Thread thread = new Thread(new Runnable() {
                @Override
                public void run() {
                    ProbeAgent.run(args);
                }
            }, "workbench-agent");
            thread.setDaemon(true);
            thread.start();
        } catch (Throwable t) {
            warn("not started: " + t);
        }
    }

    private static void run(String args) {
        try {
            Path directory = ProbeDirectory.resolve(args, System.getenv());
            String refusal = ProbeDirectory.prepare(directory);
            if (refusal != null) {
                warn(refusal);
                return;
            }
            // String.concat, not `+`, on the way to the socket: the first `+` of a JVM bootstraps its invokedynamic
            // concatenation (StringConcatFactory), in the start of the program this agent holds. (Not compiled away
            // for the whole jar: the kernels run in the worker's measured JVM, and that changed its allocations.)
            String name = "agent-".concat(Long.toString(ProcessHandle.current().pid())).concat(".sock");
            new ProbeServer(directory.resolve(name)).serve();
        } catch (IllegalArgumentException badArgument) {
            warn("not started: " + badArgument.getMessage());
        } catch (Throwable t) {
            warn("stopped: " + t);
        } finally {
            RELEASE.countDown(); // a server that is not running must not hold the program
        }
    }

    /** One line on stderr: the agent's only way to speak to the program's user. */
    static void warn(String message) {
        System.err.println("workbench-agent: " + message.replace('\n', ' ').replace('\r', ' '));
    }
}
