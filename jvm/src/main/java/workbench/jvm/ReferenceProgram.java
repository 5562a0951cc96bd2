package workbench.jvm;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.IntVector;

/**
 * The reference scenario as a plain Java program (what users run by hand under LD_PRELOAD), so benchmarks can
 * compare a bare {@code java} process with the same work done under the workbench.
 * Arguments: value count, hold in milliseconds.
 */
public final class ReferenceProgram {
    private ReferenceProgram() {}

    public static void main(String[] args) throws Exception {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 100_000;
        long holdMillis = args.length > 1 ? Long.parseLong(args[1]) : 1000;
        try (BufferAllocator allocator = new RootAllocator()) {
            try (IntVector vector = new IntVector("intVector", allocator)) {
                vector.allocateNew(count);
                IntVectorKernels.fillSequence(vector, count, 2);
                vector.setValueCount(count);
                System.out.println("allocated_bytes=" + allocator.getAllocatedMemory()
                        + " sum=" + IntVectorKernels.sum(vector));
                Thread.sleep(holdMillis);
            }
        }
        System.out.println(NativeMemory.query("summary").lines().filter(l -> l.startsWith("Total")).findFirst().orElse(""));
    }
}
