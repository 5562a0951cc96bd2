package workbench.jvm;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVectorHelper;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.VarCharVector;

/**
 * The fill and set_safe steps: elements [0, count) set to "sequence" i * k, "constant" k or "random" uniform in
 * [0, k) from seed, written one of three ways:
 * <ul>
 *   <li>{@code unchecked}: straight into the data buffer's memory (MemoryUtil), the validity bits set in bulk; the
 *       vector must already have capacity for count (checked once, here). Memory speed.</li>
 *   <li>{@code set}: Arrow's {@code set(i, x)} per element, bounds-checked, as a program written by hand does.</li>
 *   <li>{@code set_safe}: Arrow's {@code setSafe(i, x)}, which reallocates (doubling) past the capacity.</li>
 * </ul>
 * All three leave the same bytes in the buffers. Variable-width vectors are always written with setSafe (their data
 * size is not known upfront). Each call returns the nanoseconds the writes took.
 */
public final class FillKernels {
    private FillKernels() {}

    private static final int SEQUENCE = 0;
    private static final int CONSTANT = 1;
    private static final int RANDOM = 2;

    private static int pattern(String name) {
        switch (name) {
            case "sequence": return SEQUENCE;
            case "constant": return CONSTANT;
            case "random": return RANDOM;
            default: throw new IllegalArgumentException("unknown fill pattern " + name);
        }
    }

    /** The write path a fill of this vector takes when asked for {@code write}: VarChar is always set_safe. */
    public static String effectiveWrite(ValueVector vector, String write) {
        return vector instanceof VarCharVector ? "set_safe" : write;
    }

    /** Fills [0, count) as the class comment says; returns the nanoseconds the writes took. */
    public static long fill(ValueVector vector, int count, String patternName, long k, long seed, String write) {
        int pattern = pattern(patternName);
        SplittableRandom random = new SplittableRandom(seed);
        long began = System.nanoTime();
        switch (effectiveWrite(vector, write)) {
            case "unchecked":
                unchecked((BaseFixedWidthVector) vector, count, pattern, k, random);
                break;
            case "set":
                perElement(vector, count, pattern, k, random, false);
                break;
            case "set_safe":
                perElement(vector, count, pattern, k, random, true);
                break;
            default:
                throw new IllegalArgumentException("unknown write path " + write);
        }
        long took = System.nanoTime() - began;
        vector.setValueCount(Math.max(vector.getValueCount(), count));
        return took;
    }

    private static long value(int pattern, int i, long k, SplittableRandom random) {
        switch (pattern) {
            case SEQUENCE: return (long) i * k;
            case CONSTANT: return k;
            default: return random.nextLong(Math.max(1, k));
        }
    }

    private static void unchecked(BaseFixedWidthVector vector, int count, int pattern, long k,
                                  SplittableRandom random) {
        if (count > vector.getValueCapacity()) {
            throw new IndexOutOfBoundsException("fill of " + count + " values into " + vector.getName()
                    + ", which has capacity for " + vector.getValueCapacity()
                    + ": unchecked writes do not grow a vector (write: set_safe does)");
        }
        long address = vector.getDataBuffer().memoryAddress();
        if (vector instanceof IntVector) {
            if (pattern == SEQUENCE) {
                // i * k in int arithmetic has the low 32 bits of the long product: the same value (int) (i * k).
                int step = (int) k;
                int x = 0;
                for (int i = 0; i < count; i++, x += step) {
                    MemoryUtil.putInt(address + 4L * i, x);
                }
            } else {
                for (int i = 0; i < count; i++) {
                    MemoryUtil.putInt(address + 4L * i, (int) value(pattern, i, k, random));
                }
            }
        } else if (vector instanceof BigIntVector) {
            for (int i = 0; i < count; i++) {
                MemoryUtil.putLong(address + 8L * i, value(pattern, i, k, random));
            }
        } else if (vector instanceof Float8Vector) {
            for (int i = 0; i < count; i++) {
                MemoryUtil.putLong(address + 8L * i, Double.doubleToRawLongBits(value(pattern, i, k, random)));
            }
        } else {
            throw new IllegalArgumentException("cannot fill " + vector.getClass().getSimpleName());
        }
        setValid(vector.getValidityBuffer(), count);
    }

    /** Validity bits [0, count) set, whole bytes at memset speed; bits past count untouched, as set(i) leaves them. */
    private static void setValid(ArrowBuf validity, int count) {
        int wholeBytes = count / 8;
        if (wholeBytes > 0) {
            validity.setOne(0, (long) wholeBytes);
        }
        for (int i = wholeBytes * 8; i < count; i++) {
            BitVectorHelper.setBit(validity, i);
        }
    }

    private static void perElement(ValueVector vector, int count, int pattern, long k, SplittableRandom random,
                                   boolean safe) {
        if (vector instanceof IntVector) {
            IntVector v = (IntVector) vector;
            for (int i = 0; i < count; i++) {
                int x = (int) value(pattern, i, k, random);
                if (safe) { v.setSafe(i, x); } else { v.set(i, x); }
            }
        } else if (vector instanceof BigIntVector) {
            BigIntVector v = (BigIntVector) vector;
            for (int i = 0; i < count; i++) {
                long x = value(pattern, i, k, random);
                if (safe) { v.setSafe(i, x); } else { v.set(i, x); }
            }
        } else if (vector instanceof Float8Vector) {
            Float8Vector v = (Float8Vector) vector;
            for (int i = 0; i < count; i++) {
                double x = value(pattern, i, k, random);
                if (safe) { v.setSafe(i, x); } else { v.set(i, x); }
            }
        } else if (vector instanceof VarCharVector) {
            VarCharVector v = (VarCharVector) vector;
            for (int i = 0; i < count; i++) {
                v.setSafe(i, Long.toString(value(pattern, i, k, random)).getBytes(StandardCharsets.US_ASCII));
            }
        } else {
            throw new IllegalArgumentException("cannot fill " + vector.getClass().getSimpleName());
        }
    }
}
