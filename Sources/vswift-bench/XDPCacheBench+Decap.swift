import CXDP
import Glibc
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// `xdp-cache`'s LISP decapsulation rows (bpf/vswift_decap.h): an underlay program with a decap
/// entry for (local RLOC, remote RLOC, instance id), the bench's frame arriving encapsulated.
extension XDPCacheBench {
    func measureDecap(object: String, inner: [UInt8]) throws {
        let cache = try XDPFlowCache(capacity: 4096, portSlots: 16)
        let program = try XDPFlowCacheProgram(objectPath: object, cache: cache, inPort: 1)
        try cache.setPort(slot: 1, ifindex: if_nametoindex("lo"))
        try cache.setEnabled(true)
        let lispPort: UInt32 = 0x8000_0002
        for (family, local, remote) in [
            ("IPv4", IPAddress(ipv4: 0xc000_0201), IPAddress(ipv4: 0xc633_6402)),
            ("IPv6", IPAddress(high: 0x2001_0db8_0000_0001, low: 1), IPAddress(high: 0x2001_0db8_0000_0002, low: 2)),
        ] {
            try program.setUnderlay(address: local)
            let outer = Self.encapsulate(inner, source: remote, destination: local)
            try cache.setEnabled(false)
            try measure("LISP decap (\(family) outer), cache off", program, outer, masks: 0, entries: 0)
            try cache.setEnabled(true)
            try measure("LISP decap (\(family) outer), no decap entry", program, outer, masks: 0, entries: 0)
            let decapKey = XDPDecapKey(ifindex: if_nametoindex("lo"), localRLOC: local, remoteRLOC: remote, instanceID: 1000)
            try cache.setDecapEntry(decapKey, inPort: lispPort, slot: 0)
            var mask = FlowKey()
            mask.set(.inPort, 0xffff_ffff)
            let slot = try cache.addMask(mask)!
            try measure("LISP decap (\(family) outer), inner miss", program, outer, masks: 1, entries: 0)
            var key = FlowKey()
            key.set(.inPort, UInt64(lispPort))
            let id = try cache.install(maskSlot: slot, key: key, actions: [.output(slot: 1)])
            // The decapsulation moves the buffer's head: one run per call, the kernel's time per call.
            try measureOneByOne("hit LISP decap (\(family) outer) + output, one run per call", program, outer, masks: 1, entries: 1)
            cache.remove(id: id)
            cache.removeDecapEntry(decapKey)
        }
    }

    /// `inner` as LISP.encapsulate sends it (instance id 1000; the UDP checksum computed over IPv6).
    static func encapsulate(_ inner: [UInt8], source: IPAddress, destination: IPAddress) -> [UInt8] {
        let headroom = 128
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + inner.count, alignment: 8)
        defer { buffer.deallocate() }
        inner.withUnsafeBytes { buffer.advanced(by: headroom).copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var p = buffer.advanced(by: headroom)
        var length = inner.count
        let parameters = LISP.EncapsulationParameters(ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb,
                                                      source: source, destination: destination)
        _ = LISP.encapsulate(&p, length: &length, headroom: headroom, instanceID: 1000, parameters: parameters,
                             ipIdentification: 1)
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }
}
