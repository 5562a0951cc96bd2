package workbench.agent;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.RuntimeMXBean;
import java.lang.management.ThreadMXBean;
import java.lang.reflect.Method;
import java.util.List;

/**
 * The JVM's management beans the {@code stats} reply reads, looked up once. Where {@code sun.management} is open to
 * the agent they come from {@code ManagementFactoryHelper}, which is where {@link ManagementFactory} gets them too:
 * its own lookup first loads every platform component and their providers (measured on JDK 17 in a fresh JVM:
 * 80 ms for the five beans this reads, 13-22 ms from the helper), and the start snapshot's first reply is what a
 * program under {@code workbench exec} waits for in premain. The figures are the same objects' either way.
 */
final class PlatformBeans {
    final RuntimeMXBean runtime;
    final MemoryMXBean memory;
    final ThreadMXBean threads;
    final List<BufferPoolMXBean> bufferPools;
    final List<GarbageCollectorMXBean> collectors;

    private PlatformBeans(RuntimeMXBean runtime, MemoryMXBean memory, ThreadMXBean threads,
                          List<BufferPoolMXBean> bufferPools, List<GarbageCollectorMXBean> collectors) {
        this.runtime = runtime;
        this.memory = memory;
        this.threads = threads;
        this.bufferPools = List.copyOf(bufferPools);
        this.collectors = List.copyOf(collectors);
    }

    /** From the helper when {@code opened} (the agent opened sun.management to itself) and this JDK has it as
     * expected; else from ManagementFactory. */
    static PlatformBeans lookUp(boolean opened) {
        if (opened) {
            try {
                return fromHelper();
            } catch (ReflectiveOperationException | RuntimeException | LinkageError otherInternals) {
                // another JDK's internals: ManagementFactory it is
            }
        }
        return new PlatformBeans(ManagementFactory.getRuntimeMXBean(), ManagementFactory.getMemoryMXBean(),
                ManagementFactory.getThreadMXBean(), ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class),
                ManagementFactory.getGarbageCollectorMXBeans());
    }

    @SuppressWarnings("unchecked")
    private static PlatformBeans fromHelper() throws ReflectiveOperationException {
        Class<?> helper = Class.forName("sun.management.ManagementFactoryHelper", true,
                ManagementFactory.class.getClassLoader());
        return new PlatformBeans((RuntimeMXBean) call(helper, "getRuntimeMXBean"),
                (MemoryMXBean) call(helper, "getMemoryMXBean"), (ThreadMXBean) call(helper, "getThreadMXBean"),
                (List<BufferPoolMXBean>) call(helper, "getBufferPoolMXBeans"),
                (List<GarbageCollectorMXBean>) call(helper, "getGarbageCollectorMXBeans"));
    }

    private static Object call(Class<?> helper, String name) throws ReflectiveOperationException {
        Method method = helper.getDeclaredMethod(name);
        method.setAccessible(true);
        Object value = method.invoke(null);
        if (value == null) {
            throw new ReflectiveOperationException(name + " returned null");
        }
        return value;
    }
}
