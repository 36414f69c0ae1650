import VSwiftProtocol

/// The rule for bridge, port and device names: the kernel's own (`dev_valid_name` in
/// net/core/dev.c), checked before a name reaches the datapath, the configuration file or any
/// lookup. Without it a name such as "z\u{0}y" became kernel device "z" (C strings end at NUL) while
/// the switch saved and compared "z\u{0}y", so a NUL suffix got past the duplicate-port check.
public enum InterfaceName {
    /// IFNAMSIZ (16) including the terminating NUL.
    public static let maxLength = 15

    /// Why `name` is not a valid interface name, or nil when it is.
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "it is empty" }
        if bytes.count > maxLength { return "it is longer than \(maxLength) bytes" }
        if name == "." || name == ".." { return "\".\" and \"..\" are reserved" }
        for byte in bytes {
            switch byte {
            case 0: return "it contains a NUL byte"
            // The kernel's isspace() counts 0xA0 (Latin-1 no-break space) too.
            case 0x09...0x0D, 0x20, 0xA0: return "it contains white space"
            case 0x01..<0x20, 0x7F: return "it contains a control character"
            case UInt8(ascii: "/"), UInt8(ascii: ":"): return "it contains '/' or ':'"
            // The kernel expands "%d" in a new device's name (dev_alloc_name), so the device would
            // not be called what the configuration says.
            case UInt8(ascii: "%"): return "it contains '%'"
            default: continue
            }
        }
        return nil
    }

    /// `name` as a JSON-style quoted string, so control bytes in an error message are visible.
    public static func quoted(_ name: String) -> String {
        var out: [UInt8] = []
        JSONWriter.writeString(name, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
