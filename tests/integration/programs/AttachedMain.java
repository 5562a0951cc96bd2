import java.nio.ByteBuffer;

/** A program for `workbench attach --profile`: it says "ready", waits, then allocates a direct buffer of an unusual
 * size from its own method and keeps it while it waits again, so the allocation falls between attach's snapshots. */
public final class AttachedMain {
    static final int KEPT_BYTES = 2_222_222;

    static ByteBuffer allocate() {
        ByteBuffer buffer = ByteBuffer.allocateDirect(KEPT_BYTES);
        buffer.put(0, (byte) 1);
        return buffer;
    }

    public static void main(String[] args) throws Exception {
        long waitMs = Long.parseLong(args[0]);
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(waitMs);
        ByteBuffer kept = allocate();
        System.out.println("allocated " + kept.capacity());
        System.out.flush();
        Thread.sleep(waitMs);
    }
}
