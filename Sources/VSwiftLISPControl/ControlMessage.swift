/// LISP control message types (RFC 9301 §5.1, §12.2 "LISP Packet Type Codes"): the top 4 bits of the
/// first byte.
public enum ControlMessageType {
    public static let mapRequest: UInt8 = 1
    public static let mapReply: UInt8 = 2
    public static let mapRegister: UInt8 = 3
    public static let mapNotify: UInt8 = 4
    public static let mapNotifyAck: UInt8 = 5
    public static let encapsulatedControlMessage: UInt8 = 8

    /// The type of a message, read from its first byte; nil for an empty one.
    public static func of(_ bytes: [UInt8]) -> UInt8? { bytes.first.map { $0 >> 4 } }
}

/// The UDP port of LISP control messages (RFC 9301 §5, §12.1).
public let lispControlPort: UInt16 = 4342

/// One LISP control message, as a value. `decode` takes a UDP payload (from port 4342) and either
/// returns the message or throws the one reason it is refused; `encoded` gives the payload back.
/// What decodes encodes to the same bytes, except fields the RFC says to ignore on receipt (reserved
/// bits, unused locator flags, LCAF Rsvd1), which encode as 0.
public enum ControlMessage: Hashable, Sendable {
    case mapRequest(MapRequest)
    case mapReply(MapReply)
    case mapRegister(MapRegister)
    case mapNotify(MapNotify)
    case mapNotifyAck(MapNotify)
    indirect case encapsulated(EncapsulatedControlMessage)

    public var type: UInt8 {
        switch self {
        case .mapRequest: return ControlMessageType.mapRequest
        case .mapReply: return ControlMessageType.mapReply
        case .mapRegister: return ControlMessageType.mapRegister
        case .mapNotify: return ControlMessageType.mapNotify
        case .mapNotifyAck: return ControlMessageType.mapNotifyAck
        case .encapsulated: return ControlMessageType.encapsulatedControlMessage
        }
    }

    /// Decodes a whole UDP payload: the message must end exactly where the payload does.
    /// Work and memory are linear in `bytes.count` and capped by `limits`.
    public static func decode(_ bytes: [UInt8], limits: DecodeLimits = .default) throws(ControlMessageError) -> ControlMessage {
        try decode(bytes, from: 0, end: bytes.count, limits: limits, allowEncapsulated: true)
    }

    static func decode(_ bytes: [UInt8], from start: Int, end: Int, limits: DecodeLimits,
                       allowEncapsulated: Bool) throws(ControlMessageError) -> ControlMessage {
        guard end - start <= DecodeLimits.maxMessageLength else { throw .messageTooLong(end - start) }
        var r = ByteReader(bytes, from: start, end: end)
        guard r.remaining > 0 else { throw .truncated }
        let type = bytes[start] >> 4
        let message: ControlMessage
        switch type {
        case ControlMessageType.mapRequest: message = .mapRequest(try MapRequest.decode(&r, limits: limits))
        case ControlMessageType.mapReply: message = .mapReply(try MapReply.decode(&r, limits: limits))
        case ControlMessageType.mapRegister: message = .mapRegister(try MapRegister.decode(&r, limits: limits))
        case ControlMessageType.mapNotify: message = .mapNotify(try MapNotify.decode(&r, limits: limits))
        case ControlMessageType.mapNotifyAck: message = .mapNotifyAck(try MapNotify.decode(&r, limits: limits))
        case ControlMessageType.encapsulatedControlMessage:
            guard allowEncapsulated else { throw .nestedEncapsulation }
            // The ECM's inner message ends where its inner UDP length says: it consumes the rest.
            return .encapsulated(try EncapsulatedControlMessage.decode(&r, limits: limits))
        default:
            throw .unknownMessageType(type)
        }
        try r.expectEnd()
        return message
    }

    /// The UDP payload for this message. Authentication data is written as the model holds it; use
    /// `MapRegister.encoded(authenticatingWith:)` (or `ControlAuthentication.sign`) to compute it.
    public func encoded() throws(ControlMessageEncodingError) -> [UInt8] {
        var w = ByteWriter()
        try encode(into: &w)
        guard w.count <= DecodeLimits.maxMessageLength else { throw .messageTooLong(w.count) }
        return w.bytes
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        switch self {
        case .mapRequest(let m): try m.encode(into: &w)
        case .mapReply(let m): try m.encode(into: &w)
        case .mapRegister(let m): try m.encode(into: &w)
        case .mapNotify(let m): try m.encode(type: ControlMessageType.mapNotify, into: &w)
        case .mapNotifyAck(let m): try m.encode(type: ControlMessageType.mapNotifyAck, into: &w)
        case .encapsulated(let m): try m.encode(into: &w)
        }
    }
}
