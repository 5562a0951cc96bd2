import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/** A program for `workbench attach --profile`: it says "ready", waits until the file named by its argument exists,
 * then allocates a direct buffer of an unusual size from its own method and keeps it until it is killed. */
public final class AttachedMain {
    static final int KEPT_BYTES = 2_222_222;

    static ByteBuffer allocate() {
        ByteBuffer buffer = ByteBuffer.allocateDirect(KEPT_BYTES);
        buffer.put(0, (byte) 1);
        return buffer;
    }

    public static void main(String[] args) throws Exception {
        Path go = Path.of(args[0]);
        System.out.println("ready");
        System.out.flush();
        while (!Files.exists(go)) {
            Thread.sleep(20);
        }
        ByteBuffer kept = allocate();
        System.out.println("allocated " + kept.capacity());
        System.out.flush();
        Thread.sleep(120_000);
    }
}
