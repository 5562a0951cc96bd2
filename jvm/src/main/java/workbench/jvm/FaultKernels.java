package workbench.jvm;

import java.lang.reflect.Field;

/** Faults on purpose, so the workbench's handling of a dying process can be tested with the real thing. */
public final class FaultKernels {
    private FaultKernels() {}

    /** A write through Unsafe to address 0: HotSpot takes a SIGSEGV, writes hs_err_pid*.log and aborts. */
    public static void segfault() throws ReflectiveOperationException {
        Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
        Field field = unsafeClass.getDeclaredField("theUnsafe");
        field.setAccessible(true);
        Object unsafe = field.get(null);
        unsafeClass.getMethod("putLong", long.class, long.class).invoke(unsafe, 0L, 42L);
    }
}
