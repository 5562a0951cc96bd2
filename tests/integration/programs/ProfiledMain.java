import java.nio.ByteBuffer;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.IntVector;

/** A small program for `workbench exec --profile`: a direct buffer of an unusual size kept to the end, and an Arrow
 * vector allocated and closed; both from this class's own methods. */
public final class ProfiledMain {
    static final int KEPT_BYTES = 3_333_333;

    static ByteBuffer keep() {
        ByteBuffer buffer = ByteBuffer.allocateDirect(KEPT_BYTES);
        for (int i = 0; i < KEPT_BYTES; i += 4096) {
            buffer.put(i, (byte) 1);
        }
        return buffer;
    }

    static long vector(RootAllocator allocator) {
        try (IntVector vector = new IntVector("v", allocator)) {
            vector.allocateNew(100_000);
            for (int i = 0; i < 100_000; i++) {
                vector.set(i, i);
            }
            vector.setValueCount(100_000);
            return vector.getDataBuffer().capacity();
        }
    }

    public static void main(String[] args) throws Exception {
        ByteBuffer kept = keep();
        try (RootAllocator allocator = new RootAllocator()) {
            System.out.println("vector data " + vector(allocator));
        }
        Thread.sleep(200);
        System.out.println("kept " + kept.capacity());
    }
}
