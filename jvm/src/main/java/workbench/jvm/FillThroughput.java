package workbench.jvm;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.IntVector;

/**
 * Throughput of {@link FillKernels#fill} for an IntVector, "sequence" pattern, by write path (unchecked, set,
 * set_safe): first on the freshly allocated vector, then repeatedly on the same memory. Prints one line per
 * measurement: {@code write first|again nanos bytes} (bytes: the values, 4 per int). Arrow zeroes a vector's
 * buffers in allocateNew, so the pages are resident before the first fill either way.
 * Arguments: value count, repetitions after the first.
 */
public final class FillThroughput {
    private FillThroughput() {}

    private static final String[] WRITES = {"unchecked", "set", "set_safe"};

    public static void main(String[] args) {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 100_000_000;
        int repetitions = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        long bytes = 4L * count;
        try (BufferAllocator allocator = new RootAllocator()) {
            // Warm every path up on a small vector so the figures measure memory, not the JIT.
            try (IntVector warm = new IntVector("warm", allocator)) {
                warm.allocateNew(1 << 20);
                for (int i = 0; i < 50; i++) {
                    for (String write : WRITES) {
                        FillKernels.fill(warm, 1 << 20, "sequence", i, 0, write);
                    }
                }
            }
            long expected = 0;
            for (String write : WRITES) {
                try (IntVector vector = new IntVector("fill-" + write, allocator)) {
                    vector.allocateNew(count);
                    System.out.println(write + " first " + FillKernels.fill(vector, count, "sequence", 2, 0, write)
                            + " " + bytes);
                    for (int r = 0; r < repetitions; r++) {
                        System.out.println(write + " again "
                                + FillKernels.fill(vector, count, "sequence", 3, 0, write) + " " + bytes);
                    }
                    long sum = IntVectorKernels.sum(vector);
                    if (write.equals(WRITES[0])) {
                        expected = sum;
                    } else if (sum != expected) {
                        throw new IllegalStateException(write + " wrote other values: sum " + sum + ", unchecked "
                                + expected);
                    }
                }
            }
        }
    }
}
