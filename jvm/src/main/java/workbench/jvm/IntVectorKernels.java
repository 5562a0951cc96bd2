package workbench.jvm;

import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.vector.IntVector;

/** Hot loops over IntVectors, so the workbench never touches elements one JPype call at a time. */
public final class IntVectorKernels {
    private IntVectorKernels() {}

    /**
     * Sets element i to i * k for i in [0, count) with Arrow's bounds-checked {@code set}, the loop a program written
     * by hand has (the reference program's); the vector must already have capacity for count.
     */
    public static void fillSequence(IntVector vector, int count, int k) {
        for (int i = 0; i < count; i++) {
            vector.set(i, i * k);
        }
    }

    /**
     * Sum of the non-null values in [0, valueCount), as a long so it cannot overflow for int inputs. Reads the
     * buffers' memory directly (the bounds are the vector's own value count), so checking gigabytes stays cheap.
     */
    public static long sum(IntVector vector) {
        long total = 0;
        int n = vector.getValueCount();
        if (n == 0) {
            return 0;
        }
        long data = vector.getDataBuffer().memoryAddress();
        long validity = vector.getValidityBuffer().memoryAddress();
        for (int i = 0; i < n; i++) {
            if ((MemoryUtil.getByte(validity + (i >>> 3)) & (1 << (i & 7))) != 0) {
                total += MemoryUtil.getInt(data + 4L * i);
            }
        }
        return total;
    }
}
