import VSwiftLISPControl

/// libFuzzer target: `ControlMessage.decode` on any UDP payload of port 4342, as the control plane
/// receives it from the underlay. Checks: decoding throws or returns, never traps; what decodes
/// encodes without error, to the same length (an ECM's inner IPv4 options are dropped, so there
/// at most the same), and that encoding decodes to the same message; tighter `DecodeLimits` refuse
/// or agree. (Authentication, which needs swift-crypto, is left to the unit tests.)
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? ControlMessage.decode(bytes) else { return 0 }
    let encoded: [UInt8]
    do {
        encoded = try message.encoded()
    } catch {
        preconditionFailure("a decoded message does not encode: \(error)")
    }
    if case .encapsulated = message {
        precondition(encoded.count <= size, "an ECM encodes longer than it arrived")
    } else {
        precondition(encoded.count == size, "re-encoding changed the length")
    }
    precondition((try? ControlMessage.decode(encoded)) == message, "decode(encode(m)) != m")
    let tight = DecodeLimits(maxRecords: 1, maxLocatorsPerRecord: 1, maxLocatorsPerMessage: 1)
    if let limited = try? ControlMessage.decode(bytes, limits: tight) {
        precondition(limited == message, "limits changed what decodes")
    }
    return 0
}
