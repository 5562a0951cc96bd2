package workbench.profile;

import java.lang.reflect.Field;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.BufferLedger;

/**
 * The buffers an Arrow allocator tree still holds, as Arrow's debug allocator recorded them
 * ({@code -Darrow.memory.debug.allocator=true}: every allocator keeps its ledgers, every ledger its buffers and the
 * stack that created it). Read by reflection: Arrow keeps these logs for its own {@code toVerboseString()} only.
 *
 * <p>One line per ledger (one allocation from the allocation manager):
 * {@code allocator<TAB>ledger id<TAB>size<TAB>address<TAB>buffers<TAB>created epoch ns<TAB>frames}, frames root
 * first as {@code package.Class.method}, joined by {@code ;}; address is the lowest of its buffers' memory addresses.
 */
public final class ArrowBuffers {
    private ArrowBuffers() {}

    /** Whether Arrow's debug allocator is on (its ledgers and logs exist only then). */
    public static boolean debug() throws ReflectiveOperationException {
        Field debug = Class.forName("org.apache.arrow.memory.BaseAllocator").getField("DEBUG");
        debug.setAccessible(true);  // a public field of a package-private class
        return debug.getBoolean(null);
    }

    /** The open ledgers of {@code root} and all its descendants, one line each (empty without the debug allocator). */
    public static String describe(BufferAllocator root) throws ReflectiveOperationException {
        StringBuilder out = new StringBuilder();
        if (!debug()) {
            return "";
        }
        long nanoToEpoch = epochNanos(Instant.now()) - System.nanoTime();
        List<BufferAllocator> pending = new ArrayList<>(List.of(root));
        while (!pending.isEmpty()) {
            BufferAllocator allocator = pending.remove(pending.size() - 1);
            pending.addAll(allocator.getChildAllocators());
            Object lock = field(allocator, "DEBUG_LOCK");
            List<BufferLedger> ledgers;
            synchronized (lock) {
                ledgers = new ArrayList<>(((Map<BufferLedger, ?>) field(allocator, "childLedgers")).keySet());
            }
            for (BufferLedger ledger : ledgers) {
                List<ArrowBuf> buffers;
                synchronized (ledger) {
                    buffers = new ArrayList<>(((Map<ArrowBuf, ?>) field(ledger, "buffers")).keySet());
                }
                long address = Long.MAX_VALUE;
                for (ArrowBuf buffer : buffers) {
                    address = Math.min(address, buffer.memoryAddress());
                }
                Object event = firstEvent(field(ledger, "historicalLog"));
                for (int i = 0; event == null && i < buffers.size(); i++) {
                    event = firstEvent(field(buffers.get(i), "historicalLog"));
                }
                StringBuilder frames = new StringBuilder();
                long created = 0;
                if (event != null) {
                    created = nanoToEpoch + (long) field(event, "time");
                    StackTraceElement[] elements = (StackTraceElement[]) field(field(event, "stackTrace"),
                            "stackTraceElements");
                    for (int i = elements.length - 1; i >= 0; i--) {
                        frames.append(frames.length() > 0 ? ";" : "").append(elements[i].getClassName()).append('.')
                                .append(elements[i].getMethodName());
                    }
                }
                out.append(allocator.getName()).append('\t').append((long) field(ledger, "ledgerId")).append('\t')
                        .append(ledger.getSize()).append('\t').append(buffers.isEmpty() ? 0 : address).append('\t')
                        .append(buffers.size()).append('\t').append(created).append('\t').append(frames).append('\n');
            }
        }
        return out.toString();
    }

    private static Object firstEvent(Object log) throws ReflectiveOperationException {
        return log == null ? null : field(log, "firstEvent");
    }

    @SuppressWarnings("unchecked")
    private static <T> T field(Object target, String name) throws ReflectiveOperationException {
        for (Class<?> type = target.getClass(); type != null; type = type.getSuperclass()) {
            try {
                Field field = type.getDeclaredField(name);
                field.setAccessible(true);
                return (T) field.get(target);
            } catch (NoSuchFieldException missing) {
                // declared by a superclass
            }
        }
        throw new NoSuchFieldException(target.getClass().getName() + "." + name);
    }

    private static long epochNanos(Instant instant) {
        return instant.getEpochSecond() * 1_000_000_000L + instant.getNano();
    }
}
