/// The one writer of JSON text in vswift: replies, requests, journal records and the saved
/// configuration file all come out of it, so their layout cannot drift apart.
///
/// Object keys are sorted. Compact text is one line; pretty text puts every array element and object
/// member on its own line, indented by two spaces per level (an empty container stays `[]`, `{}`).
/// Non-finite doubles are written as null (JSON has no NaN or infinity; JavaScript's
/// `JSON.stringify` does the same). Strings escape only `"`, `\` and control characters; other
/// UTF-8 passes through.
///
/// With a `chunkSize`, the text is handed to `emit` in pieces of about that many bytes as it is
/// written, so a saved configuration of 100 MB is never held whole.
package struct JSONWriter {
    /// The text not yet handed out.
    package private(set) var out: [UInt8] = []
    private let pretty: Bool
    private let chunkSize: Int
    private let emit: (([UInt8]) -> Bool)?
    /// `emit` returned false: the rest is not written.
    private(set) var failed = false

    /// Collects the whole text in `out`.
    package init(pretty: Bool) {
        self.pretty = pretty
        self.chunkSize = .max
        self.emit = nil
    }

    private init(pretty: Bool, chunkSize: Int, emit: @escaping ([UInt8]) -> Bool) {
        self.pretty = pretty
        self.chunkSize = chunkSize
        self.emit = emit
        out.reserveCapacity(min(chunkSize, 1 << 20) + 4096)
    }

    /// Writes `value` (and a final newline when `newline`) through `emit` in pieces of about
    /// `chunkSize` bytes; stops early, returning false, when `emit` returns false.
    package static func stream(
        _ value: JSONValue, pretty: Bool, newline: Bool, chunkSize: Int, emit: ([UInt8]) -> Bool
    ) -> Bool {
        withoutActuallyEscaping(emit) { emit in
            var writer = JSONWriter(pretty: pretty, chunkSize: chunkSize, emit: emit)
            writer.write(value)
            if newline { writer.out.append(UInt8(ascii: "\n")) }
            writer.flush(force: true)
            return !writer.failed
        }
    }

    package mutating func write(_ value: JSONValue) {
        write(value, indent: 0)
    }

    private mutating func write(_ value: JSONValue, indent: Int) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): out.append(contentsOf: String(value).utf8)
        case .uint(let value): out.append(contentsOf: String(value).utf8)
        case .double(let value) where !value.isFinite: out.append(contentsOf: "null".utf8)
        case .double(let value): out.append(contentsOf: String(value).utf8)  // shortest text that reads back exactly
        case .string(let value): Self.writeString(value, to: &out)
        case .array(let elements):
            writeContainer("[", "]", elements, indent: indent) { writer, element, indent in
                writer.write(element, indent: indent)
            }
        case .object(let members):
            writeContainer("{", "}", members.sorted { $0.key < $1.key }, indent: indent) { writer, member, indent in
                Self.writeString(member.key, to: &writer.out)
                writer.out.append(contentsOf: (writer.pretty ? ": " : ":").utf8)
                writer.write(member.value, indent: indent)
            }
        }
    }

    private mutating func writeContainer<Element>(
        _ open: Unicode.Scalar, _ close: Unicode.Scalar, _ elements: [Element], indent: Int,
        writeElement: (inout JSONWriter, Element, Int) -> Void
    ) {
        out.append(UInt8(ascii: open))
        let inner = indent + 2
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            if pretty { newline(indent: inner) }
            writeElement(&self, element, inner)
            flush()
            if failed { return }
        }
        if pretty && !elements.isEmpty { newline(indent: indent) }
        out.append(UInt8(ascii: close))
    }

    private mutating func newline(indent: Int) {
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent))
    }

    /// Hands `out` to `emit` once it holds a chunk (or anything, when `force`).
    private mutating func flush(force: Bool = false) {
        guard let emit, !failed, force || out.count >= chunkSize else { return }
        if !out.isEmpty && !emit(out) { failed = true }
        out.removeAll(keepingCapacity: true)
    }

    package static func writeString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copied in one go from their UTF-8 storage.
        let plain = string.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                return false
            }
            out.append(contentsOf: bytes)
            return true
        }
        if plain == true {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:  // other control characters
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(contentsOf: [hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: out.append(byte)  // UTF-8 passes through
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
