package workbench.jvm;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.IntVector;

/**
 * Throughput of {@link IntVectorKernels#fillSequence}: once on fresh pages (first touch included), then repeatedly
 * on the same, already touched memory. Prints one line per measurement: {@code name nanos bytes}.
 * Arguments: value count, repetitions on touched memory.
 */
public final class FillThroughput {
    private FillThroughput() {}

    public static void main(String[] args) {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 100_000_000;
        int repetitions = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        long bytes = 4L * count;
        try (BufferAllocator allocator = new RootAllocator(); IntVector vector = new IntVector("fill", allocator)) {
            // Warm the kernel up on a small vector so the first-touch figure measures pages, not the JIT.
            try (IntVector warm = new IntVector("warm", allocator)) {
                warm.allocateNew(1 << 20);
                for (int i = 0; i < 50; i++) {
                    IntVectorKernels.fillSequence(warm, 1 << 20, i);
                }
            }
            vector.allocateNew(count);
            long start = System.nanoTime();
            IntVectorKernels.fillSequence(vector, count, 2);
            System.out.println("first_touch " + (System.nanoTime() - start) + " " + bytes);
            for (int r = 0; r < repetitions; r++) {
                start = System.nanoTime();
                IntVectorKernels.fillSequence(vector, count, 3 + r);
                System.out.println("touched " + (System.nanoTime() - start) + " " + bytes);
            }
            vector.setValueCount(count);
            System.out.println("checksum " + IntVectorKernels.sum(vector) + " 0");
        }
    }
}
