package workbench.agent;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.lang.instrument.Instrumentation;
import java.util.Map;
import java.util.Set;
import javax.management.ObjectName;

/**
 * The {@code stats} reply: one JSON object with the JVM's own view of its memory.
 * <pre>
 * {"pid", "t_ms" (uptime), "nmt" (text of VM.native_memory summary scale=b, or null), "nmt_error" (only when null),
 *  "buffer_pools": {name: {"count", "memory_used_bytes", "total_capacity_bytes"}} (at least "direct", "mapped"),
 *  "heap": {"used_bytes", "committed_bytes", "max_bytes"}, "non_heap": {...}, "gc": [{"name", "count", "time_ms"}],
 *  "threads", "java_version", "vm_name"}
 * </pre>
 * A figure the JVM does not know (reported as -1, e.g. non_heap max) is null. The management beans are first
 * touched here, not at premain, so a program that never gets asked never loads JMX; except in a JVM held for a
 * start snapshot ({@code workbench exec}), where premain (or {@link NativeStart#started}) calls {@link #warmUp}.
 * Served by the Java agent's {@link ProbeServer} ({@code -javaagent}, attach), NIO copies the reply through its
 * per-thread temporary direct buffer, so after the first reply the "direct" pool includes a few KiB of the agent's
 * own; the native agent's server ({@code workbench exec}) sends the reply's bytes from a static buffer instead.
 */
final class Stats {
    private static final String[] SIGNATURE = {String[].class.getName()};
    private static final String[] NMT_SUMMARY = {"summary", "scale=b"};
    private static final String NMT_OFF = "Native memory tracking is not enabled";
    private static final String NMT_COMMAND = "VM.native_memory summary scale=b";
    /** Given by premain or agentmain: lets the agent open the JDK's diagnostic command to itself. */
    static volatile Instrumentation instrumentation;
    private static boolean directTried;
    private static boolean opened;
    private static DirectDiagnosticCommand diagnosticCommand;
    private static PlatformBeans beans;
    static volatile long nativePid;

    private Stats() {}

    /**
     * One reply collected and dropped: the first one's one-time costs (the modules opened, the diagnostic command
     * and the beans looked up, their classes loaded and first run) are 15-20 ms on JDK 17 here, the next ones' 1.5-2
     * ms. Called by premain while it holds the program, beside the server thread's start, so that the start
     * snapshot the program waits for gets a reply at the later cost.
     */
    static void warmUp() {
        try {
            collect();
        } catch (Throwable notNow) {
            // The reply that is asked for will say what failed.
        }
    }

    /** The process id as the native agent gave it ({@link NativeStart#started}), else from ProcessHandle: whose
     * first use initializes ProcessHandleImpl (its lambdas and reaper executor: 4-7 ms of a held start here). */
    static long pid() {
        long given = nativePid;
        return given > 0 ? given : ProcessHandle.current().pid();
    }

    static String collect() {
        DirectDiagnosticCommand direct = direct(); // first: it opens sun.management, which the beans come from
        PlatformBeans beans = beans();
        Json json = new Json().beginObject();
        json.field("pid", pid());
        json.field("t_ms", beans.runtime.getUptime());
        nmt(json, direct);
        json.key("buffer_pools").beginObject();
        for (BufferPoolMXBean pool : beans.bufferPools) {
            json.key(pool.getName()).beginObject()
                    .fieldOrNull("count", pool.getCount())
                    .fieldOrNull("memory_used_bytes", pool.getMemoryUsed())
                    .fieldOrNull("total_capacity_bytes", pool.getTotalCapacity())
                    .endObject();
        }
        json.endObject();
        usage(json.key("heap"), beans.memory.getHeapMemoryUsage());
        usage(json.key("non_heap"), beans.memory.getNonHeapMemoryUsage());
        json.key("gc").beginArray();
        for (GarbageCollectorMXBean gc : beans.collectors) {
            json.beginObject()
                    .field("name", gc.getName())
                    .fieldOrNull("count", gc.getCollectionCount())
                    .fieldOrNull("time_ms", gc.getCollectionTime())
                    .endObject();
        }
        json.endArray();
        json.field("threads", beans.threads.getThreadCount());
        json.field("java_version", System.getProperty("java.version"));
        json.field("vm_name", System.getProperty("java.vm.name"));
        return json.endObject().toString();
    }

    /** NMT read in-process: about 10 ms through the JDK's diagnostic command directly, where the first call
     * through the DiagnosticCommand MBean spends 200-300 ms building the platform MBean server (that cost was most
     * of what the program waited for its start snapshot) and jcmd starts a JVM of its own. */
    private static void nmt(Json json, DirectDiagnosticCommand direct) {
        String text;
        try {
            text = direct != null ? direct.execute(NMT_COMMAND)
                    : (String) ManagementFactory.getPlatformMBeanServer().invoke(
                            new ObjectName("com.sun.management:type=DiagnosticCommand"), "vmNativeMemory",
                            new Object[] {NMT_SUMMARY}, SIGNATURE);
        } catch (Exception e) {
            json.key("nmt").value((String) null).field("nmt_error", e.toString());
            return;
        }
        if (text == null || text.contains(NMT_OFF)) {
            String why = text == null ? "no reply from VM.native_memory" : text.strip()
                    + " (start the JVM with -XX:NativeMemoryTracking=summary)";
            json.key("nmt").value((String) null).field("nmt_error", why);
        } else {
            json.field("nmt", text);
        }
    }

    /** HotSpot's diagnostic command called directly, its packages opened to the agent through Instrumentation or
     * the native agent; null (the MBean is used) when neither is there or this JDK's internals differ. */
    private static synchronized DirectDiagnosticCommand direct() {
        if (directTried) {
            return diagnosticCommand;
        }
        directTried = true;
        Instrumentation inst = instrumentation;
        Module jdkManagement = ModuleLayer.boot().findModule("jdk.management").orElse(null);
        if ((inst == null && !NativeStart.canOpen()) || jdkManagement == null) {
            return null;
        }
        try {
            Module agent = Stats.class.getModule();
            open(inst, ManagementFactory.class.getModule(), "sun.management", agent);
            open(inst, jdkManagement, "com.sun.management.internal", agent);
        } catch (RuntimeException refused) {
            return null;
        }
        opened = true;
        diagnosticCommand = DirectDiagnosticCommand.open(jdkManagement);
        return diagnosticCommand;
    }

    /** {@code module} opens {@code pkg} to {@code to}: through Instrumentation (-javaagent, attach), else through
     * the native agent's JVMTI AddModuleOpens ({@link NativeStart}). */
    private static void open(Instrumentation inst, Module module, String pkg, Module to) {
        if (inst != null) {
            inst.redefineModule(module, Set.of(), Map.of(), Map.of(pkg, Set.of(to)), Set.of(), Map.of());
        } else {
            NativeStart.addOpens(module, pkg, to);
        }
    }

    private static synchronized PlatformBeans beans() {
        if (beans == null) {
            beans = PlatformBeans.lookUp(opened);
        }
        return beans;
    }

    private static void usage(Json json, MemoryUsage usage) {
        json.beginObject()
                .fieldOrNull("used_bytes", usage.getUsed())
                .fieldOrNull("committed_bytes", usage.getCommitted())
                .fieldOrNull("max_bytes", usage.getMax())
                .endObject();
    }
}
