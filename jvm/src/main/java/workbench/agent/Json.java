package workbench.agent;

/**
 * A JSON writer for the agent's replies, by hand because the agent may use JDK classes only.
 * Callers nest begin/end correctly; commas are placed here.
 */
final class Json {
    private final StringBuilder out = new StringBuilder(256);
    private boolean needsComma;

    Json beginObject() {
        separate();
        out.append('{');
        needsComma = false;
        return this;
    }

    Json endObject() {
        out.append('}');
        needsComma = true;
        return this;
    }

    Json beginArray() {
        separate();
        out.append('[');
        needsComma = false;
        return this;
    }

    Json endArray() {
        out.append(']');
        needsComma = true;
        return this;
    }

    /** The key of the next value, which is then written by a value method or beginObject/beginArray. */
    Json key(String name) {
        separate();
        string(name);
        out.append(':');
        needsComma = false;
        return this;
    }

    Json field(String name, String value) {
        return key(name).value(value);
    }

    Json field(String name, long value) {
        return key(name).value(value);
    }

    Json field(String name, boolean value) {
        key(name);
        separate();
        out.append(value);
        needsComma = true;
        return this;
    }

    /** A size or count that the JVM reports as -1 when it does not know it: written as null then. */
    Json fieldOrNull(String name, long value) {
        key(name);
        separate();
        out.append(value < 0 ? "null" : Long.toString(value));
        needsComma = true;
        return this;
    }

    Json value(String value) {
        separate();
        if (value == null) {
            out.append("null");
        } else {
            string(value);
        }
        needsComma = true;
        return this;
    }

    Json value(long value) {
        separate();
        out.append(value);
        needsComma = true;
        return this;
    }

    private void separate() {
        if (needsComma) {
            out.append(',');
        }
    }

    private void string(String value) {
        out.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u2029') {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    @Override
    public String toString() {
        return out.toString();
    }
}
