/// Splitting a list of mapping records over several messages (Map-Register, Map-Reply), because
/// one message cannot carry them all: its Record Count is 8 bits (RFC 9301 §5.6, §5.4), a
/// receiver bounds what it decodes (`DecodeLimits`), and a message must fit 576 (IPv4) or 1,280
/// (IPv6) bytes of IP packet when the path MTU is not known (RFC 9301 §5). Records are never split: each group is a run of whole records, in order.
public enum RecordBatching {
    /// The largest UDP payload of a control message to an IPv4 destination: RFC 9301 §5, "for
    /// deployments not aware of the underlay restrictions on the path MTU, the message size MUST
    /// be limited to 576 bytes for IPv4 or 1280 bytes for IPv6 -- considering the entire IP
    /// packet": 576 − 20 (IPv4 header) − 8 (UDP header).
    public static let maxPayloadIPv4 = 548
    /// The same for an IPv6 destination: 1,280 − 40 (IPv6 header) − 8 (UDP header).
    public static let maxPayloadIPv6 = 1_232

    /// The bound for a message to a destination of that family (RFC 9301 §5).
    public static func maxPayload(ipv4: Bool) -> Int { ipv4 ? maxPayloadIPv4 : maxPayloadIPv6 }

    /// Bytes `record` takes on the wire (RFC 9301 §5.4 record format); nil when it cannot be
    /// encoded (more locators than 255, an invalid EID prefix, ...).
    public static func encodedLength(_ record: MappingRecord) -> Int? {
        var w = ByteWriter(capacity: 64)
        do { try record.encode(into: &w) } catch { return nil }
        return w.count
    }

    /// `records` cut into consecutive groups, each fitting one message of `headerBytes` (what
    /// precedes the records) plus its records in at most `maxPayload` bytes (`maxPayload(ipv4:)`), with at most
    /// `DecodeLimits.default`'s records and locators (so we accept what we send; the Record
    /// Count's 255 is above them). A record that does not fit even alone goes alone (the
    /// datagram is then fragmented by IP). Records that cannot be encoded are left out.
    public static func groups(_ records: [MappingRecord], headerBytes: Int, maxPayload: Int) -> [[MappingRecord]] {
        let limits = DecodeLimits.default
        let maxRecords = min(Int(UInt8.max), limits.maxRecords)
        var result: [[MappingRecord]] = []
        var current: [MappingRecord] = []
        var bytes = headerBytes
        var locators = 0
        for record in records {
            guard let length = encodedLength(record), record.locators.count <= limits.maxLocatorsPerRecord else { continue }
            if !current.isEmpty, bytes + length > maxPayload || current.count == maxRecords
                || locators + record.locators.count > limits.maxLocatorsPerMessage {
                result.append(current)
                current = []
                bytes = headerBytes
                locators = 0
            }
            current.append(record)
            bytes += length
            locators += record.locators.count
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
