package workbench.jvm;

import org.apache.arrow.vector.IntVector;

/** Hot loops over IntVectors, so the workbench never touches elements one JPype call at a time. */
public final class IntVectorKernels {
    private IntVectorKernels() {}

    /** Sets element i to i * k for i in [0, count); the vector must already have capacity for count. */
    public static void fillSequence(IntVector vector, int count, int k) {
        for (int i = 0; i < count; i++) {
            vector.set(i, i * k);
        }
    }

    /** Sum of the non-null values in [0, valueCount), as a long so it cannot overflow for int inputs. */
    public static long sum(IntVector vector) {
        long total = 0;
        int n = vector.getValueCount();
        for (int i = 0; i < n; i++) {
            if (!vector.isNull(i)) {
                total += vector.get(i);
            }
        }
        return total;
    }
}
