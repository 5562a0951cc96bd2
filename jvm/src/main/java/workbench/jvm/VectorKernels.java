package workbench.jvm;

import java.nio.ByteBuffer;
import org.apache.arrow.memory.AllocationManager;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.util.TransferPair;

/** Vector work for the scenario steps, one call per step: every per-element loop stays in Java. */
public final class VectorKernels {
    private VectorKernels() {}

    /** A root allocator with an explicit allocation manager ("netty" or "unsafe"), or the default one for null. */
    public static RootAllocator rootAllocator(String manager, long limit) {
        if (manager == null) {
            return new RootAllocator(limit);
        }
        AllocationManager.Factory factory;
        try {
            String className = manager.equals("netty")
                    ? "org.apache.arrow.memory.netty.NettyAllocationManager"
                    : "org.apache.arrow.memory.unsafe.UnsafeAllocationManager";
            factory = (AllocationManager.Factory) Class.forName(className).getField("FACTORY").get(null);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("allocation manager " + manager + " is not on the class path", e);
        }
        return new RootAllocator(RootAllocator.configBuilder().maxAllocation(limit).allocationManagerFactory(factory)
                .build());
    }

    public static ValueVector create(String type, String name, BufferAllocator allocator) {
        switch (type) {
            case "IntVector": return new IntVector(name, allocator);
            case "BigIntVector": return new BigIntVector(name, allocator);
            case "Float8Vector": return new Float8Vector(name, allocator);
            case "VarCharVector": return new VarCharVector(name, allocator);
            default: throw new IllegalArgumentException("unknown vector type " + type);
        }
    }

    /** allocateNew for count values; variable-width vectors get bytesPerValue bytes of data per value. */
    public static void allocate(ValueVector vector, int count, int bytesPerValue) {
        if (vector instanceof VarCharVector) {
            ((VarCharVector) vector).allocateNew((long) count * bytesPerValue, count);
        } else {
            ((BaseFixedWidthVector) vector).allocateNew(count);
        }
    }

    /** Moves the vector's buffers to another allocator; returns the vector that now owns them. */
    public static ValueVector transfer(ValueVector vector, BufferAllocator to) {
        TransferPair pair = vector.getTransferPair(to);
        pair.transfer();
        return pair.getTo();
    }

    /** A new vector holding [start, start + length) of the source, in the same allocator. */
    public static ValueVector slice(ValueVector vector, int start, int length) {
        TransferPair pair = vector.getTransferPair(vector.getAllocator());
        pair.splitAndTransfer(start, length);
        return pair.getTo();
    }

    /** Bytes the vector's buffers hold, as Arrow accounts them. */
    public static long bufferSize(ValueVector vector) {
        long total = 0;
        for (org.apache.arrow.memory.ArrowBuf buffer : vector.getBuffers(false)) {
            total += buffer.capacity();
        }
        return total;
    }

    /** ByteBuffer.allocateDirect, with every page written so it is resident. */
    public static ByteBuffer allocateDirect(int size) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(size);
        for (int i = 0; i < size; i += 4096) {
            buffer.put(i, (byte) 1);
        }
        return buffer;
    }

    /** Frees a direct buffer now (Unsafe.invokeCleaner), instead of whenever the GC finds it. */
    public static void releaseDirect(ByteBuffer buffer) throws ReflectiveOperationException {
        Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
        java.lang.reflect.Field field = unsafeClass.getDeclaredField("theUnsafe");
        field.setAccessible(true);
        Object unsafe = field.get(null);
        unsafeClass.getMethod("invokeCleaner", ByteBuffer.class).invoke(unsafe, buffer);
    }
}
