package workbench.profile;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordedStackTrace;
import jdk.jfr.consumer.RecordingFile;

/**
 * Live native memory by call site at each mark of a run, from async-profiler's nativemem recording.
 *
 * <p>Reads the JFR with the JDK's own {@code jdk.jfr.consumer} API: {@code profiler.Malloc} (address, size,
 * stackTrace) and {@code profiler.Free} (address). Events are put in time order, then swept once: at each snapshot
 * mark, every stack's bytes and count allocated and not yet freed, split by the step that allocated them.
 *
 * <pre>java -cp KERNELS workbench.profile.NativeCallSites RECORDING.jfr MARKS.tsv OUT.json NMT_HEADER INTERVAL
 *     [BUFFERS.tsv]</pre>
 *
 * MARKS.tsv has one line per mark, {@code step<TAB>index<TAB>epoch_ns<TAB>size} or
 * {@code snapshot<TAB>label<TAB>epoch_ns<TAB>size}: where the worker called {@link Marks#mark} with that size, the
 * recording's own malloc of it is the mark (same clock as the events); else (size 0, or not found) epoch_ns is.
 * NMT_HEADER is what Native Memory Tracking adds to each malloc of libjvm's os::malloc (0 when NMT is off): taken
 * off, so that a 4 MiB chunk reads 4,194,304 B. INTERVAL is async-profiler's nativemem interval in bytes: with one
 * above 0 an allocation smaller than it stands for INTERVAL bytes (it was sampled once per INTERVAL bytes).
 * BUFFERS.tsv (Arrow's debug allocator, {@link ArrowBuffers}) has {@code label<TAB>ledger line} per open ledger at
 * each snapshot: each is joined by address with the live malloc whose range holds it (its stack and step).
 */
public final class NativeCallSites {
    static final String SCHEMA = "workbench.native-callsites/1";
    private static final int INDEX_BITS = 27;  // events per recording this sorts by (time, index) in one long

    private NativeCallSites() {}

    private static final class Events {
        long[] time = new long[1 << 16];
        long[] address = new long[1 << 16];
        long[] size = new long[1 << 16];  // the weighted size; -1 for a free
        long[] raw = new long[1 << 16];  // the size malloc was asked for (the chunk's range, for buffers' addresses)
        int[] stack = new int[1 << 16];
        int[] step = new int[1 << 16];
        int count;

        void add(long t, long addr, long bytes, long rawBytes, int stackId) {
            if (count == time.length) {
                int grown = count * 2;
                time = Arrays.copyOf(time, grown);
                address = Arrays.copyOf(address, grown);
                size = Arrays.copyOf(size, grown);
                raw = Arrays.copyOf(raw, grown);
                stack = Arrays.copyOf(stack, grown);
                step = Arrays.copyOf(step, grown);
            }
            time[count] = t;
            address[count] = addr;
            size[count] = bytes;
            raw[count] = rawBytes;
            stack[count] = stackId;
            count++;
        }
    }

    private static final class Stack {
        final List<String> frames = new ArrayList<>();  // root first, as collapsed stacks are written
        final StringBuilder kinds = new StringBuilder();  // per frame, root first: J(ava), N(ative), C(++), K(ernel)
        final LinkedHashSet<String> libraries = new LinkedHashSet<>();
        int javaFrames;
        boolean throughOsMalloc;  // the malloc came from libjvm's os::malloc/os::realloc (NMT's header applies)
        boolean marker;  // Marks.mark: a mark on the timeline, not a call site
    }

    private static boolean isJava(RecordedFrame frame) {
        String type = frame.getType();
        return type != null && !type.equals("Native") && !type.equals("C++") && !type.equals("Kernel");
    }

    private static Stack stackOf(RecordedStackTrace trace) {
        Stack stack = new Stack();
        List<String> leafFirst = new ArrayList<>();
        StringBuilder kindsLeafFirst = new StringBuilder();
        boolean hook = true;
        for (RecordedFrame frame : trace == null ? List.<RecordedFrame>of() : trace.getFrames()) {
            RecordedMethod method = frame.getMethod();
            String owner = method == null || method.getType() == null ? "" : method.getType().getName();
            if (!isJava(frame) && owner.contains("/")) {
                owner = owner.substring(owner.lastIndexOf('/') + 1);
            }
            String name = method == null ? "?" : method.getName();
            if (hook && owner.startsWith("libasyncProfiler")) {
                continue;  // the profiler's own malloc_hook
            }
            if (hook) {
                stack.throughOsMalloc = !isJava(frame) && (name.equals("os::malloc") || name.equals("os::realloc"));
            }
            hook = false;
            String type = frame.getType();
            kindsLeafFirst.append(isJava(frame) ? 'J' : "C++".equals(type) ? 'C' : "Kernel".equals(type) ? 'K' : 'N');
            if (isJava(frame)) {
                stack.marker |= owner.equals(Marks.class.getName()) && name.equals("mark");
                stack.javaFrames++;
                leafFirst.add(owner + "." + name);
            } else {
                if (!owner.isEmpty()) {
                    stack.libraries.add(owner);
                }
                leafFirst.add(name.contains("/") ? name.substring(name.lastIndexOf('/') + 1) : name);
            }
        }
        for (int i = leafFirst.size() - 1; i >= 0; i--) {
            stack.frames.add(leafFirst.get(i));
        }
        stack.kinds.append(kindsLeafFirst.reverse());
        return stack;
    }

    private static long epochNanos(Instant instant) {
        return instant.getEpochSecond() * 1_000_000_000L + instant.getNano();
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 5 && args.length != 6) {
            System.err.println("usage: NativeCallSites RECORDING.jfr MARKS.tsv OUT.json NMT_HEADER INTERVAL [BUFFERS]");
            System.exit(2);
        }
        Path recording = Path.of(args[0]);
        List<String[]> marks = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[1]), StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
                marks.add(line.split("\t"));
            }
        }
        long nmtHeader = Long.parseLong(args[3]);
        long interval = Long.parseLong(args[4]);
        Map<String, List<long[]>> buffers = new HashMap<>();  // label -> (ledger id, address) of its open ledgers
        if (args.length == 6) {
            for (String line : Files.readAllLines(Path.of(args[5]), StandardCharsets.UTF_8)) {
                String[] fields = line.split("\t", -1);
                if (fields.length >= 5) {
                    buffers.computeIfAbsent(fields[0], k -> new ArrayList<>())
                            .add(new long[] {Long.parseLong(fields[2]), Long.parseLong(fields[4])});
                }
            }
        }
        Map<String, Object> out = read(recording, marks, nmtHeader, interval, buffers);
        ObjectMapper mapper = new ObjectMapper().disable(SerializationFeature.INDENT_OUTPUT);
        Path target = Path.of(args[2]);
        Path partial = target.resolveSibling(target.getFileName() + ".partial");
        mapper.writeValue(partial.toFile(), out);
        Files.move(partial, target, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    static Map<String, Object> read(Path recording, List<String[]> marks, long nmtHeader, long interval,
                                    Map<String, List<long[]>> buffers) throws IOException {
        Events events = new Events();
        List<Stack> stacks = new ArrayList<>();
        Map<String, Integer> byKey = new HashMap<>();
        IdentityHashMap<RecordedStackTrace, Integer> seen = new IdentityHashMap<>();
        Map<Long, Long> markerTimes = new HashMap<>();  // marker size -> when it was allocated
        long mallocs = 0;
        long frees = 0;
        try (RecordingFile file = new RecordingFile(recording)) {
            while (file.hasMoreEvents()) {
                RecordedEvent event = file.readEvent();
                String type = event.getEventType().getName();
                boolean malloc = type.equals("profiler.Malloc");
                if (!malloc && !type.equals("profiler.Free")) {
                    continue;
                }
                long t = epochNanos(event.getStartTime());
                long address = event.getLong("address");
                if (!malloc) {
                    frees++;
                    events.add(t, address, -1, 0, -1);
                    continue;
                }
                mallocs++;
                RecordedStackTrace trace = event.getStackTrace();
                Integer id = trace == null ? null : seen.get(trace);
                if (id == null) {
                    Stack stack = stackOf(trace);
                    String key = String.join(";", stack.frames) + "|" + stack.throughOsMalloc;
                    id = byKey.get(key);
                    if (id == null) {
                        id = stacks.size();
                        stacks.add(stack);
                        byKey.put(key, id);
                    }
                    if (trace != null) {
                        seen.put(trace, id);
                    }
                }
                long raw = event.getLong("size");
                long bytes = stacks.get(id).throughOsMalloc ? Math.max(raw - nmtHeader, 0) : raw;
                if (stacks.get(id).marker) {
                    markerTimes.merge(bytes, t, Math::min);
                }
                // Sampled once per `interval` bytes: a smaller allocation stands for the interval's bytes.
                events.add(t, address, interval > 0 && raw < interval ? interval : bytes, raw, id);
            }
        }
        if (events.count >= 1 << INDEX_BITS) {
            throw new IOException("too many events to sort (" + events.count + "): use a larger interval");
        }
        long first = Long.MAX_VALUE;
        long last = Long.MIN_VALUE;
        for (int i = 0; i < events.count; i++) {
            first = Math.min(first, events.time[i]);
            last = Math.max(last, events.time[i]);
        }
        long[] order = new long[events.count];
        for (int i = 0; i < events.count; i++) {
            order[i] = ((events.time[i] - first) << INDEX_BITS) | i;
        }
        Arrays.sort(order);

        // The sweep: live allocations by address; per (stack, step) their bytes and count.
        Map<Long, Integer> live = new HashMap<>();
        Map<Long, long[]> perSite = new HashMap<>();
        List<Map<String, Object>> snapshots = new ArrayList<>();
        LinkedHashMap<Integer, Integer> usedStacks = new LinkedHashMap<>();  // stack id -> index in the output
        long unmatchedFrees = 0;
        int next = 0;
        int currentStep = -1;
        int marked = 0;
        for (int m = 0; m <= marks.size(); m++) {
            long until = Long.MAX_VALUE;
            if (m < marks.size()) {
                Long markerTime = markerTimes.get(Long.parseLong(marks.get(m)[3]));
                marked += markerTime != null ? 1 : 0;
                until = markerTime != null ? markerTime : Long.parseLong(marks.get(m)[2]);
            }
            for (; next < order.length; next++) {
                int i = (int) (order[next] & ((1L << INDEX_BITS) - 1));
                if (events.time[i] > until) {
                    break;
                }
                if (events.size[i] >= 0) {
                    if (stacks.get(events.stack[i]).marker) {
                        continue;  // its free is then unmatched, as for any malloc the sweep does not keep
                    }
                    Integer previous = live.put(events.address[i], i);
                    if (previous != null) {
                        release(events, previous, perSite);  // reused before its free was seen: the old one is gone
                    }
                    events.step[i] = currentStep;
                    long[] site = perSite.computeIfAbsent(siteKey(events.stack[i], currentStep), k -> new long[2]);
                    site[0] += events.size[i];
                    site[1]++;
                } else {
                    Integer allocated = live.remove(events.address[i]);
                    if (allocated == null) {
                        unmatchedFrees++;  // allocated before the recording started, or not sampled
                    } else {
                        release(events, allocated, perSite);
                    }
                }
            }
            if (m == marks.size()) {
                break;
            }
            String[] mark = marks.get(m);
            if (mark[0].equals("step")) {
                currentStep = Integer.parseInt(mark[1]);
            } else {
                Map<String, Object> snapshot = snapshot(mark[1], until, perSite, usedStacks);
                if (buffers.containsKey(mark[1])) {
                    snapshot.put("buffers", joinBuffers(buffers.get(mark[1]), events, live, usedStacks));
                }
                snapshots.add(snapshot);
            }
        }
        List<Map<String, Object>> stackList = new ArrayList<>();
        for (int id : usedStacks.keySet()) {
            Stack stack = stacks.get(id);
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("frames", stack.frames);
            entry.put("kinds", stack.kinds.toString());
            entry.put("libraries", new ArrayList<>(stack.libraries));
            entry.put("java_frames", stack.javaFrames);
            stackList.add(entry);
        }
        Map<String, Object> recordingInfo = new LinkedHashMap<>();
        recordingInfo.put("first_ns", events.count > 0 ? first : 0);
        recordingInfo.put("last_ns", events.count > 0 ? last : 0);
        recordingInfo.put("mallocs", mallocs);
        recordingInfo.put("frees", frees);
        recordingInfo.put("unmatched_frees", unmatchedFrees);
        recordingInfo.put("marks", marks.size());
        recordingInfo.put("marks_on_recording_clock", marked);
        recordingInfo.put("stacks", stacks.size());
        recordingInfo.put("nmt_header_bytes", nmtHeader);
        recordingInfo.put("interval_bytes", interval);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("schema", SCHEMA);
        out.put("recording", recordingInfo);
        out.put("stacks", stackList);
        out.put("snapshots", snapshots);
        return out;
    }

    /** Each open ledger's live malloc: the one whose range [address, address + size) holds its address. */
    private static List<Map<String, Object>> joinBuffers(List<long[]> ledgers, Events events, Map<Long, Integer> live,
                                                         Map<Integer, Integer> usedStacks) {
        TreeMap<Long, Integer> byAddress = new TreeMap<>(live);
        List<Map<String, Object>> joined = new ArrayList<>();
        for (long[] ledger : ledgers) {
            Map.Entry<Long, Integer> chunk = ledger[1] == 0 ? null : byAddress.floorEntry(ledger[1]);
            Map<String, Object> buffer = new LinkedHashMap<>();
            buffer.put("ledger", ledger[0]);
            if (chunk != null && ledger[1] < chunk.getKey() + events.raw[chunk.getValue()]) {
                int i = chunk.getValue();
                buffer.put("stack", usedStacks.get(events.stack[i]));
                buffer.put("step", events.step[i]);
                buffer.put("chunk_address", chunk.getKey());
                buffer.put("chunk_bytes", events.raw[i]);
            }
            joined.add(buffer);
        }
        return joined;
    }

    private static long siteKey(int stack, int step) {
        return ((long) stack << 20) | (step + 1);
    }

    private static void release(Events events, int index, Map<Long, long[]> perSite) {
        long key = siteKey(events.stack[index], events.step[index]);
        long[] site = perSite.get(key);
        site[0] -= events.size[index];
        site[1]--;
        if (site[1] == 0) {
            perSite.remove(key);
        }
    }

    private static Map<String, Object> snapshot(String label, long at, Map<Long, long[]> perSite,
                                                Map<Integer, Integer> usedStacks) {
        // Per stack: bytes and count, and the same split by the step that allocated them.
        Map<Integer, long[]> totals = new HashMap<>();
        Map<Integer, Map<String, Long>> steps = new HashMap<>();
        long liveBytes = 0;
        long liveCount = 0;
        for (Map.Entry<Long, long[]> entry : perSite.entrySet()) {
            int stack = (int) (entry.getKey() >>> 20);
            int step = (int) (entry.getKey() & ((1 << 20) - 1)) - 1;
            long[] value = entry.getValue();
            long[] total = totals.computeIfAbsent(stack, k -> new long[2]);
            total[0] += value[0];
            total[1] += value[1];
            steps.computeIfAbsent(stack, k -> new LinkedHashMap<>()).merge(String.valueOf(step), value[0], Long::sum);
            liveBytes += value[0];
            liveCount += value[1];
        }
        List<Map<String, Object>> sites = new ArrayList<>();
        totals.entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]))
                .forEach(entry -> {
                    Map<String, Object> site = new LinkedHashMap<>();
                    site.put("stack", usedStacks.computeIfAbsent(entry.getKey(), k -> usedStacks.size()));
                    site.put("bytes", entry.getValue()[0]);
                    site.put("count", entry.getValue()[1]);
                    site.put("steps", steps.get(entry.getKey()));
                    sites.add(site);
                });
        Map<String, Object> snapshot = new LinkedHashMap<>();
        snapshot.put("label", label);
        snapshot.put("t_ns", at);
        snapshot.put("live_bytes", liveBytes);
        snapshot.put("live_count", liveCount);
        snapshot.put("sites", sites);
        return snapshot;
    }
}
