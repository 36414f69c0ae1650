import VSwiftPacket

/// libFuzzer target: the frame parser / flow extractor the datapath runs on every received frame.
/// The input is the frame. Checks: extraction returns (never traps, reads only the frame, which
/// sits in an allocation of exactly its size), is deterministic, keeps the input port, and the
/// link-layer-only extraction agrees with the full one on the fields it fills.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // An exact-size copy, so a read past the end lands outside the allocation (under ASan, a report).
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data, byteCount: size)
    let inPort: UInt32 = size > 0 ? UInt32(data[0]) &+ 1 : 7

    var key = FlowKey()
    FlowExtractor.extract(frame, length: size, inPort: inPort, into: &key)
    var again = FlowKey()
    FlowExtractor.extract(frame, length: size, inPort: inPort, into: &again)
    precondition(key == again, "extraction is not deterministic")
    precondition(key.get(.inPort) == UInt64(inPort), "in_port lost")

    var linkLayer = FlowKey()
    FlowExtractor.extractLinkLayer(frame, length: size, inPort: inPort, into: &linkLayer)
    for field in [FlowField.inPort, .dlType, .dlSrc, .dlDst, .vlanTCI, .vlanOuterTCI] {
        precondition(linkLayer.get(field) == key.get(field), "link-layer extraction disagrees on \(field)")
    }

    var tunnelKey = FlowKey()
    FlowExtractor.extract(frame, length: size, inPort: inPort, tunnelID: 5, tunnelSource: 0x0a00_0001,
                          tunnelDestination: 0x0a00_0002, into: &tunnelKey)
    precondition(tunnelKey.get(.tunId) == 5, "tun_id lost")
    return 0
}
