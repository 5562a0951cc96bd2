package workbench.profile;

import java.lang.reflect.Method;
import java.nio.ByteBuffer;

/**
 * A mark on async-profiler's nativemem timeline: one malloc and free of a size that names the mark, from this
 * method, so that NativeCallSites cuts the recording where the worker's step or snapshot began, on the recording's
 * own clock. A size at or above the sampling interval is always recorded.
 */
public final class Marks {
    private static Object unsafe;
    private static Method invokeCleaner;

    private Marks() {}

    /** Allocate and free {@code size} bytes of native memory (a direct buffer, released at once). */
    public static void mark(int size) throws ReflectiveOperationException {
        if (unsafe == null) {
            Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
            java.lang.reflect.Field field = unsafeClass.getDeclaredField("theUnsafe");
            field.setAccessible(true);
            invokeCleaner = unsafeClass.getMethod("invokeCleaner", ByteBuffer.class);
            unsafe = field.get(null);
        }
        invokeCleaner.invoke(unsafe, ByteBuffer.allocateDirect(size));
    }
}
