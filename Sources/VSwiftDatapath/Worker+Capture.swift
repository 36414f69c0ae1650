import CXDP
import VSwiftPacket

/// Port capture on the packet path (`vswiftctl capture`). A port's `captureRx`/`captureTx` are
/// bit masks of the capture slots (`captureRings`) that want its frames; both are 0 unless a
/// capture runs, so the packet path pays one load and a predictable branch per rx burst, per
/// flushed port and per tunnelled frame, and calls these (never inlined, out of the hot code)
/// only while one does. Frames are copied where the port's counters count them, so a capture
/// sees what `dump-ports` counts: rx before any action touches the frame, tx as it goes to the
/// ring or tap; a LISP port's frames as the bridge sees them (after decapsulation, before
/// encapsulation), its outer packets on the underlay port. Worker thread only; the masks and
/// rings are changed by the control thread while the worker is parked.
extension Worker {
    static let maxCaptures = 4

    /// Copies an rx burst (`count` descriptors from rx index `first`) into the capturing rings.
    @inline(never)
    func captureReceived(_ socket: UnsafeMutablePointer<XSKSocket>, first: UInt32, count: Int, taps: UInt8) {
        let timestamp = CaptureRing.now()
        for i in 0..<count {
            let desc = xsk_ring_cons__rx_desc(&socket.pointee.rx, first &+ UInt32(i)).pointee
            copyToCaptures(address: desc.addr, length: desc.len, timestamp: timestamp, direction: .rx, taps: taps)
        }
    }

    /// Copies the first `count` staged frames of a port being flushed.
    @inline(never)
    func captureStaged(_ staged: UnsafeMutablePointer<xdp_desc>, count: Int, taps: UInt8) {
        let timestamp = CaptureRing.now()
        for i in 0..<count {
            copyToCaptures(address: staged[i].addr, length: staged[i].len, timestamp: timestamp, direction: .tx, taps: taps)
        }
    }

    /// Copies one frame.
    @inline(never)
    func captureFrame(address: UInt64, length: UInt32, direction: CaptureDirection, taps: UInt8) {
        copyToCaptures(address: address, length: length, timestamp: CaptureRing.now(), direction: direction, taps: taps)
    }

    /// Copies a frame that may yet be dropped (a LISP port's inner frame before encapsulation),
    /// unpublished: `publishCaptured` makes it visible once the port counts it as sent.
    @inline(never)
    func captureTentatively(address: UInt64, length: UInt32, taps: UInt8) {
        let timestamp = CaptureRing.now()
        for slot in 0..<Self.maxCaptures where taps & (1 << UInt8(slot)) != 0 {
            guard let ring = captureRings[slot] else { continue }
            pendingCaptures &= ~(1 << UInt8(slot))
            if ring.takeUnretainedValue().write(base + Int(address), length: Int(length), timestamp: timestamp, direction: .tx) {
                pendingCaptures |= 1 << UInt8(slot)
            }
        }
    }

    @inline(never)
    func publishCaptured(taps: UInt8) {
        for slot in 0..<Self.maxCaptures where taps & pendingCaptures & (1 << UInt8(slot)) != 0 {
            captureRings[slot]?.takeUnretainedValue().publish()
        }
        pendingCaptures &= ~taps
    }

    @inline(__always)
    private func copyToCaptures(address: UInt64, length: UInt32, timestamp: UInt64, direction: CaptureDirection, taps: UInt8) {
        for slot in 0..<Self.maxCaptures where taps & (1 << UInt8(slot)) != 0 {
            captureRings[slot]?.takeUnretainedValue().push(base + Int(address), length: Int(length), timestamp: timestamp, direction: direction)
        }
    }

    // MARK: Control thread, worker parked

    /// Installs (or, with nil, removes) capture slot `slot`'s ring and the port directions it taps.
    package func setCapture(_ slot: Int, ring: CaptureRing?, port: PortSlot, directions: Set<CaptureDirection>) {
        let bit = UInt8(1) << UInt8(slot)
        captureRings[slot] = ring.map { Unmanaged.passUnretained($0) }
        let p = ports + port.index
        p.pointee.captureRx = ring != nil && directions.contains(.rx) ? p.pointee.captureRx | bit : p.pointee.captureRx & ~bit
        p.pointee.captureTx = ring != nil && directions.contains(.tx) ? p.pointee.captureTx | bit : p.pointee.captureTx & ~bit
        pendingCaptures &= ~bit
    }

    /// A port's rx and tx packet counters (for tests comparing a capture with them).
    package func packetCounts(_ port: PortSlot) -> (rx: UInt64, tx: UInt64) {
        let c = portCounters(port)
        return (c.rxPackets, c.txPackets)
    }

    /// Capture slot `slot` has no ring.
    func captureSlotIsFree(_ slot: Int) -> Bool { captureRings[slot] == nil }

    /// Whether capture slot `slot` still taps `port` (false once the port was removed: `clearPort`
    /// clears its masks).
    func captureTaps(_ slot: Int, port: PortSlot) -> Bool {
        let bit = UInt8(1) << UInt8(slot)
        return (ports[port.index].captureRx | ports[port.index].captureTx) & bit != 0
    }
}
