/// A flow file as vswiftctl sends it (add-flows, replace-flows): its lines, and the request that
/// carries them.
///
/// A line is what lies between newlines, without a final "\r"; the piece after the last newline
/// is a line unless it is empty (the file's final newline). Bytes that are not UTF-8 become
/// U+FFFD, as `String(decoding:as:)` makes them. The daemon skips blank lines and comments and
/// counts lines to name a bad one, so every line is sent as it is.
public enum FlowFile {
    /// The file's lines as strings (the reference the request below must agree with).
    public static func lines(_ bytes: [UInt8]) -> [String] {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The request line (newline included) `RPCCodec.encodeRequest` makes for `method` with
    /// `FlowLinesParams(bridge:flows: lines(file))`, written straight from the file's bytes: a
    /// million-line file made into a million strings, then a million JSON values, then text cost
    /// vswiftctl more than a second before vswiftd could start.
    public static func request(id: Int, method: String, bridge: String, file: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(file.count + file.count / 16 + 256)
        out.append(contentsOf: #"{"id":\#(id),"jsonrpc":"2.0","method":"#.utf8)
        JSONWriter.writeString(method, to: &out)
        out.append(contentsOf: #","params":{"bridge":"#.utf8)
        JSONWriter.writeString(bridge, to: &out)
        out.append(contentsOf: #","flows":["#.utf8)
        file.withUnsafeBufferPointer { bytes in
            var start = 0
            var first = true
            while true {
                var end = start
                // The first byte that JSON does not take as it is (or that may not be UTF-8).
                var special = Int.max
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") {
                    let byte = bytes[end]
                    if special == Int.max && (byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")) {
                        special = end
                    }
                    end += 1
                }
                let last = end == bytes.count
                var lineEnd = end
                if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                // The piece after the last newline is no line when it is empty.
                if last && lineEnd == start { break }
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                let line = UnsafeBufferPointer(rebasing: bytes[start..<lineEnd])
                if special >= lineEnd {
                    out.append(UInt8(ascii: "\""))
                    out.append(contentsOf: line)
                    out.append(UInt8(ascii: "\""))
                } else {
                    JSONWriter.writeString(String(decoding: line, as: UTF8.self), to: &out)
                }
                if last { break }
                start = end + 1
            }
        }
        out.append(contentsOf: "]}}\n".utf8)
        return out
    }
}
