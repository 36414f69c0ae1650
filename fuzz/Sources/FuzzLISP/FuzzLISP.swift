import VSwiftPacket

/// libFuzzer target: LISP decapsulation as the datapath runs it (Worker.receiveTunnelled):
/// `LISP.parseOuter`, then on `.lisp` `LISP.decapsulate` (TTL and ECN carried over, or a drop) and
/// flow extraction of the inner frame.
/// The input is the received frame. Checks: the single-port and port-list parse entries agree; a `.lisp` result describes
/// an inner packet inside the frame; the decapsulated frame (Ethernet header written in place over
/// the outer headers) lies inside the buffer and is 14 + the inner length.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let base = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { base.deallocate() }
    base.copyMemory(from: data, byteCount: size)

    var outer = LISP.OuterHeaders()
    let parsed = LISP.parseOuter(base, length: size, udpPort: 4341, into: &outer)
    var other = LISP.OuterHeaders()
    let parsedOther = LISP.parseOuter(base, length: size, udpPort: 4789, into: &other)
    // A frame has one UDP destination port: the list's answer is that port's answer.
    var viaList = LISP.OuterHeaders()
    let ports: [UInt16] = [4789, 4341]
    let parsedViaList = ports.withUnsafeBufferPointer {
        LISP.parseOuter(base, length: size, udpPorts: $0, into: &viaList)
    }
    precondition(parsed == .notLISP || parsedOther == .notLISP, "one frame, two UDP ports")
    precondition(parsedViaList == (parsed != .notLISP ? parsed : parsedOther), "single-port and port-list parses disagree")
    guard parsed == .lisp else { return 0 }

    precondition(outer.innerLength > 0 && outer.innerOffset >= 14, "inner packet before the frame")
    precondition(outer.innerOffset + outer.innerLength <= size, "inner packet beyond the frame")
    var start = base
    var length = size
    let result = LISP.decapsulate(&start, length: &length, outer: &outer)
    guard result == .done else {
        // Dropped for its TTL or ECN (RFC 9300 §5.3, RFC 6040 §4.2): the frame stays as it was.
        precondition(start == base && length == size, "a dropped decapsulation moved the frame")
        return 0
    }
    precondition(start >= base && start + length <= base + size, "decapsulated frame outside the buffer")
    precondition(length == 14 + outer.innerLength, "decapsulated length")

    var key = FlowKey()
    FlowExtractor.extract(start, length: length, inPort: 3, tunnelID: UInt64(outer.instanceID),
                          tunnelSource: outer.source.isIPv4 ? outer.source.ipv4 : 0,
                          tunnelDestination: outer.destination.isIPv4 ? outer.destination.ipv4 : 0, into: &key)
    return 0
}
