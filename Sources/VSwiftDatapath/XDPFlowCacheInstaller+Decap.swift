import CXDP
import VSwiftFlowCache
import VSwiftPacket

/// A LISP port as the decap wiring sees it: its `XDPDecapEntries.Port` (capturing left to the
/// installer, which knows the captures), its slot and the slot of the underlay device its
/// remote's route leaves by (nil: no decap entry).
struct XDPDecapPort: Equatable, Sendable {
    var port: XDPDecapEntries.Port
    var slot: PortSlot
    var underlay: PortSlot?
}

/// The installer's record of LISP decapsulation in XDP: what the datapath last said the LISP
/// ports are, and per installed decap entry whom its counts belong to and how much of them has
/// been folded into the ports' counters already.
struct XDPDecapState {
    struct Installed {
        var lisp: PortSlot
        var underlay: PortSlot
        var ipv6: Bool
        var packets: UInt64 = 0
        var bytes: UInt64 = 0
    }

    var ports: [XDPDecapPort] = []
    var installed: [XDPDecapKey: Installed] = [:]
}

/// LISP decapsulation in XDP, wired (DESIGN.md, "XDP flow cache", *LISP decapsulation in XDP*):
/// the decap entries follow the datapath's LISP ports, next hops and underlay devices and the
/// captures, synchronously under the installer's lock, and what they count is folded into the
/// ports' counters. A LISP port with an entry is a cacheable input (`CachePort.LISP.decapInXDP`);
/// one without is not, so its entries go when it loses it.
extension XDPFlowCacheInstaller {
    /// The LISP ports changed (a port added or deleted, a next hop published, an underlay device
    /// added or removed): the decap entries equal `XDPDecapEntries.plan` of them before this
    /// returns, and every bridge whose LISP ports gained or lost one has its entries recomputed.
    func setDecapPorts(_ ports: [XDPDecapPort]) {
        lock.lock()
        defer { lock.unlock() }
        decap.ports = ports
        syncDecapLocked(now: Self.monotonicNanoseconds())
    }

    /// Installed decap entries (tests and reports): key → the LISP port's slot.
    var decapEntrySnapshot: [XDPDecapKey: PortSlot] {
        lock.lock()
        defer { lock.unlock() }
        return decap.installed.mapValues(\.lisp)
    }

    /// Makes the map equal the plan (under the lock). A capture on the LISP port or on its
    /// underlay device takes its entry away (the capture must see the outer frames and the
    /// workers' decapsulation). A map write that fails leaves no entry at all: the workers then
    /// decapsulate everything, which is always right.
    func syncDecapLocked(now: UInt64) {
        let planned = decap.ports.map { p -> XDPDecapEntries.Port in
            var port = p.port
            port.capturing = capturing[p.slot, default: 0] > 0 || p.underlay.map { capturing[$0, default: 0] > 0 } == true
            return port
        }
        let wanted = XDPDecapEntries.plan(planned)
        var removed: [XDPDecapEntries.Removed]
        do throws(DatapathError) {
            removed = try decapEntries.sync(wanted)
        } catch {
            stats.failed &+= 1
            removed = (try? decapEntries.sync([:])) ?? []
        }
        for entry in removed { foldDecap(entry); decap.installed[entry.key] = nil }
        // New or rewritten entries start from zero (setDecapEntry zeroes their counters).
        for (key, entry) in decapEntries.installed where decap.installed[key] == nil {
            guard let port = decap.ports.first(where: { $0.port.inPort == entry.inPort }), let underlay = port.underlay else { continue }
            decap.installed[key] = .init(lisp: port.slot, underlay: underlay, ipv6: !key.remoteRLOC.isIPv4)
        }
        applyDecapFlags(now: now)
    }

    /// Sets `decapInXDP` on the LISP ports of `ports` that have a decap entry now.
    func markDecap(_ ports: inout [UInt32: XDPCachePortInfo]) {
        let decapsulating = Set(decap.installed.values.map(\.lisp))
        for (number, info) in ports {
            guard case .lisp(var lisp) = info.cache.kind else { continue }
            lisp.decapInXDP = decapsulating.contains(info.slot)
            ports[number]!.cache.kind = .lisp(lisp)
        }
    }

    /// Bridges whose LISP ports gained or lost their decap entry take their ports derived again
    /// (`rederivePorts`): every entry goes (an entry from a port XDP no longer decapsulates for
    /// could never be hit again) and is installed again if the new ports allow it, with the keys
    /// that waited for a decap entry (a decapsulated miss before its port had one).
    private func applyDecapFlags(now: UInt64) {
        rederivePorts(now: now)
    }

    /// Once a second (with the megaflow entries' counters): what each decap entry counted since.
    func foldDecapLocked() {
        for entry in decapEntries.counters() { foldDecap(entry) }
    }

    /// Adds what `entry` counted beyond what was folded: the LISP port's `decapsulated`, and the
    /// underlay device's rx with the outer frame's length (the decapsulated frame + 36 or 56:
    /// outer IP, UDP and LISP headers; the Ethernet header is one for one). The LISP port's rx and
    /// the rules are counted by the megaflow entries the inner frames hit (a frame is decapsulated
    /// in XDP only on such a hit), so not here too.
    private func foldDecap(_ entry: XDPDecapEntries.Removed) {
        guard var record = decap.installed[entry.key] else { return }
        let packets = entry.packets &- record.packets
        let bytes = entry.bytes &- record.bytes
        record.packets = entry.packets
        record.bytes = entry.bytes
        decap.installed[entry.key] = record
        guard packets > 0, record.lisp.index < DatapathLimits.maxPorts, record.underlay.index < DatapathLimits.maxPorts else { return }
        vs_add_relaxed_u64(counters.decapsulated + record.lisp.index, packets)
        let underlay = counters.ports + record.underlay.index
        let overhead = UInt64((record.ipv6 ? LISP.overheadIPv6 : LISP.overheadIPv4) - 14)
        vs_add_relaxed_u64(&underlay.pointee.rxPackets, packets)
        vs_add_relaxed_u64(&underlay.pointee.rxBytes, bytes &+ packets &* overhead)
    }
}
