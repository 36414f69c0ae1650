import CXDP
import Glibc
import VSwiftPacket

/// Where vswift's compiled BPF objects live: `$VSWIFT_BPF_DIR`, next to the running executable
/// (scripts/build.sh copies them there), or an installed location.
public enum BPFObjects {
    public static let redirect = "vswift_redirect.bpf.o"

    public static func locate(_ name: String, directory: String? = nil) -> String? {
        var candidates: [String] = []
        if let directory { candidates.append(directory) }
        if let env = getenv("VSWIFT_BPF_DIR") { candidates.append(String(cString: env)) }
        if let exeDir = executableDirectory() { candidates.append(exeDir) }
        candidates += ["/usr/local/lib/vswift", "/usr/lib/vswift"]
        for dir in candidates {
            let path = dir + "/" + name
            if access(path, R_OK) == 0 { return path }
        }
        return nil
    }

    static func executableDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return String(path[..<slash])
    }
}

/// How the XDP program is attached to a device.
public enum XDPAttachMode: String, Sendable, Codable {
    case native
    case generic
}

/// vswift's redirect program loaded for one device and attached through a BPF link.
/// Loading and attaching are separate steps so the XSKMAP can be filled in between.
///
/// A link (not a netlink attach) detaches itself when its last fd closes, so a daemon that dies
/// by SIGKILL still leaves no program behind on the device.
final class XDPRedirectProgram {
    enum Mode: UInt32 {
        case port = 0
        case underlay = 1
    }

    let device: NetworkDevice
    private(set) var attachMode: XDPAttachMode?
    private let object: OpaquePointer
    private let programFD: Int32
    private let xsksMapFD: Int32
    private let statsMapFD: Int32
    private let underlayMapFD: Int32
    private var linkFD: Int32 = -1

    /// With `cache`, the program shares the datapath's XDP flow cache maps and looks frames up
    /// as in_port `cacheInPort` (`XDPFlowCacheTranslation.inPortID`); without it, its own maps
    /// (placeholder sizes, cache off: one map read per frame).
    init(device: NetworkDevice, objectPath: String, mode: Mode, cache: XDPFlowCache? = nil,
         cacheInPort: UInt32 = 0) throws(DatapathError) {
        self.device = device
        guard let object = bpf_object__open_file(objectPath, nil) else {
            throw .system(SystemError("open BPF object \(objectPath)"))
        }
        var loaded = false
        defer { if !loaded { bpf_object__close(object) } }
        for (name, fd) in cache?.sharedMaps ?? [:] {
            guard let map = bpf_object__find_map_by_name(object, name) else {
                throw .unsupported("BPF object \(objectPath) has no map \(name)")
            }
            let reused = bpf_map__reuse_fd(map, fd)
            guard reused == 0 else { throw .system(SystemError("reuse map \(name) in \(objectPath)", negativeErrno: reused)) }
        }
        let rc = bpf_object__load(object)
        guard rc == 0 else { throw .system(SystemError("load BPF object \(objectPath)", negativeErrno: rc)) }
        guard let program = bpf_object__find_program_by_name(object, "vswift_redirect") else {
            throw .unsupported("BPF object \(objectPath) has no vswift_redirect program")
        }
        let modeMapFD = bpf_object__find_map_fd_by_name(object, "vswift_mode")
        xsksMapFD = bpf_object__find_map_fd_by_name(object, "vswift_xsks")
        statsMapFD = bpf_object__find_map_fd_by_name(object, "vswift_stats")
        underlayMapFD = bpf_object__find_map_fd_by_name(object, "vswift_underlay")
        guard modeMapFD >= 0, xsksMapFD >= 0, statsMapFD >= 0, underlayMapFD >= 0 else {
            throw .unsupported("BPF object \(objectPath) lacks vswift's maps")
        }
        var zero: UInt32 = 0
        var modeValue = mode.rawValue
        guard bpf_map_update_elem(modeMapFD, &zero, &modeValue, 0) == 0 else {
            throw .system(SystemError("configure XDP program mode"))
        }
        if cache != nil {
            var inPort = cacheInPort
            guard bpf_map_update_elem(bpf_object__find_map_fd_by_name(object, "vswift_fc_port"), &zero, &inPort, 0) == 0 else {
                throw .system(SystemError("set the XDP flow cache's in_port"))
            }
        }
        self.programFD = bpf_program__fd(program)
        self.object = object
        loaded = true
    }

    /// Attaches the program to the device: native first, generic (SKB) mode for drivers without
    /// XDP support. Done after the sockets are in the XSKMAP, so no frame meets an empty map.
    func attach() throws(DatapathError) {
        var link = vs_xdp_link_create(programFD, Int32(device.ifindex), UInt32(XDP_FLAGS_DRV_MODE))
        var mode = XDPAttachMode.native
        if link < 0, link != -EBUSY, link != -EEXIST {
            link = vs_xdp_link_create(programFD, Int32(device.ifindex), UInt32(XDP_FLAGS_SKB_MODE))
            mode = .generic
        }
        guard link >= 0 else {
            if link == -EBUSY || link == -EEXIST {
                throw .deviceInUse(device.name, reason: "another XDP program is attached to it")
            }
            throw .system(SystemError("attach XDP program to \(device.name)", negativeErrno: link))
        }
        linkFD = link
        attachMode = mode
    }

    /// Steers frames of rx queue `queue` to socket `fd`.
    func setSocket(queue: UInt32, fd: Int32) throws(DatapathError) {
        var key = queue
        var value = UInt32(bitPattern: fd)
        guard bpf_map_update_elem(xsksMapFD, &key, &value, 0) == 0 else {
            throw .system(SystemError("insert socket for \(device.name) queue \(queue) into XSKMAP"))
        }
    }

    func clearSocket(queue: UInt32) {
        var key = queue
        _ = bpf_map_delete_elem(xsksMapFD, &key)
    }

    /// A local (address, UDP port) whose packets the underlay mode steers to vswift.
    struct UnderlayKey: Hashable {
        var address: IPAddress
        var port: UInt16
    }

    private var underlayFilter: Set<UnderlayKey> = []

    /// Makes the underlay filter exactly `wanted`: new keys are added before stale ones are
    /// removed, so a change never lets tunnel traffic that stays wanted slip to the kernel.
    func setUnderlayFilter(_ wanted: Set<UnderlayKey>) {
        for key in wanted.subtracting(underlayFilter) {
            var raw = Self.mapKey(key)
            var one: UInt8 = 1
            if bpf_map_update_elem(underlayMapFD, &raw, &one, 0) == 0 { underlayFilter.insert(key) }
        }
        for key in underlayFilter.subtracting(wanted) {
            var raw = Self.mapKey(key)
            _ = bpf_map_delete_elem(underlayMapFD, &raw)
            underlayFilter.remove(key)
        }
    }

    /// `struct vswift_underlay_key`: 16 address bytes (IPv4 as ::ffff:a.b.c.d), port in network order, 2 pad.
    private static func mapKey(_ key: UnderlayKey) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: 20)
        for i in 0..<8 {
            raw[i] = UInt8(truncatingIfNeeded: key.address.high >> UInt64(56 - 8 * i))
            raw[8 + i] = UInt8(truncatingIfNeeded: key.address.low >> UInt64(56 - 8 * i))
        }
        raw[16] = UInt8(key.port >> 8)
        raw[17] = UInt8(key.port & 0xff)
        return raw
    }

    /// Frames redirected to vswift, passed to the kernel, and dropped, summed over CPUs.
    func counters() -> (redirected: UInt64, passed: UInt64, dropped: UInt64) {
        let cpus = Int(libbpf_num_possible_cpus())
        var values = [UInt64](repeating: 0, count: max(cpus, 1))
        var totals: [UInt64] = [0, 0, 0]
        for stat in 0..<3 {
            var key = UInt32(stat)
            if bpf_map_lookup_elem(statsMapFD, &key, &values) == 0 {
                totals[stat] = values.reduce(0, &+)
            }
        }
        return (totals[0], totals[1], totals[2])
    }

    /// The XDP flow cache's outcomes on this device (hits, misses, punts, failures; zero
    /// without the cache), summed over CPUs.
    func flowCacheStatistics() -> XDPFlowCacheProgram.Statistics {
        let fd = bpf_object__find_map_fd_by_name(object, "vswift_fc_stats")
        guard fd >= 0 else { return .init() }
        let cpus = max(Int(libbpf_num_possible_cpus()), 1)
        var values = [UInt64](repeating: 0, count: cpus)
        var totals = [UInt64](repeating: 0, count: 4)
        for stat in 0..<4 {
            var key = UInt32(stat)
            if bpf_map_lookup_elem(fd, &key, &values) == 0 { totals[stat] = values.reduce(0, &+) }
        }
        return .init(hits: totals[0], misses: totals[1], punted: totals[2], failed: totals[3])
    }

    /// Detaches the program from the device.
    func detach() {
        if linkFD >= 0 {
            Glibc.close(linkFD)
            linkFD = -1
        }
    }

    deinit {
        detach()
        bpf_object__close(object)
    }
}
