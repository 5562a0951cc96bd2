import java.nio.ByteBuffer;

/** A small program for `workbench exec --repeat`: one direct buffer of an unusual size (8 MiB times the argument,
 * default 1, plus 77,777 bytes), every page touched, kept to the end; NMT counts it in Other. */
public final class RepeatedMain {
    public static void main(String[] args) {
        int size = (args.length > 0 ? Integer.parseInt(args[0]) : 1) * 8 * 1024 * 1024 + 77_777;
        ByteBuffer kept = ByteBuffer.allocateDirect(size);
        for (int i = 0; i < size; i += 4096) {
            kept.put(i, (byte) 1);
        }
        System.out.println("kept " + kept.capacity());
    }
}
