import CXDP
import Glibc

/// Sizes of one socket's four rings (entries, powers of two).
public struct RingSizes: Sendable {
    public var rx: UInt32 = 2048
    public var tx: UInt32 = 2048
    /// Fill and completion rings are larger than the frames a socket ever has in circulation:
    /// the kernel publishes the fill ring's consumer index lazily.
    public var fill: UInt32 = 4096
    public var completion: UInt32 = 4096
    public init() {}
}

/// How a socket ended up bound.
public enum XSKBindMode: String, Sendable, Codable {
    case zeroCopy = "zero-copy"
    case copy
}

/// One AF_XDP socket bound to (device, queue), sharing its worker's UMEM, with its own
/// fill and completion rings (one pair per device/queue, as XDP_SHARED_UMEM across devices needs).
///
/// Lives at a stable address in the worker's socket table: the ring structs are used in place by
/// libxdp's inline ring helpers. Set up with raw syscalls rather than libxdp's socket helpers so
/// that any socket can be closed on its own: libxdp binds the first socket on the UMEM's own fd,
/// which would keep that queue bound until the whole UMEM goes away.
package struct XSKSocket {
    var fd: Int32 = -1
    var portIndex = PortSlot(rawValue: 0)
    var queueID: UInt32 = 0
    var mode: XSKBindMode = .copy
    package var rx = xsk_ring_cons()
    package var tx = xsk_ring_prod()
    package var fill = xsk_ring_prod()
    package var completion = xsk_ring_cons()
    /// Frames given to the fill ring and not yet seen on the rx ring.
    var fillOutstanding: UInt32 = 0
    /// Frames given to the tx ring and not yet seen on the completion ring.
    var txOutstanding: UInt32 = 0
    var mappings: [(UnsafeMutableRawPointer, Int)] = []
    var inMemoryRings: [UnsafeMutableRawPointer] = []

    var isOpen: Bool { fd >= 0 || !inMemoryRings.isEmpty }

    /// Opens and binds a socket in `mode`. `shareWith` is a bound socket of the same UMEM, or nil
    /// to register the UMEM on this socket. `prefill` puts frames on the fill ring before binding,
    /// so a frame arriving right after the bind finds one; if opening fails, the caller reclaims them.
    static func open(
        device: NetworkDevice, queue: UInt32, umem: UmemArea, shareWith: Int32?,
        rings: RingSizes, mode: XSKBindMode, prefill: (inout XSKSocket) -> Void
    ) throws(DatapathError) -> XSKSocket {
        var sock = XSKSocket()
        sock.queueID = queue
        sock.mode = mode
        sock.fd = socket(vs_af_xdp, vs_sock_raw | vs_sock_cloexec, 0)
        guard sock.fd >= 0 else { throw .system(SystemError("socket(AF_XDP)")) }
        var ok = false
        defer { if !ok { sock.close() } }

        if shareWith == nil {
            umem.hasTxMetadata = try sock.registerUmem(umem)
        }
        var fillSize = rings.fill, compSize = rings.completion, rxSize = rings.rx, txSize = rings.tx
        try sock.setOption(XDP_UMEM_FILL_RING, &fillSize, "set fill ring size")
        try sock.setOption(XDP_UMEM_COMPLETION_RING, &compSize, "set completion ring size")
        try sock.setOption(XDP_RX_RING, &rxSize, "set rx ring size")
        try sock.setOption(XDP_TX_RING, &txSize, "set tx ring size")

        var offsets = xdp_mmap_offsets()
        var length = socklen_t(MemoryLayout<xdp_mmap_offsets>.size)
        guard getsockopt(sock.fd, vs_sol_xdp, XDP_MMAP_OFFSETS, &offsets, &length) == 0 else {
            throw .system(SystemError("getsockopt(XDP_MMAP_OFFSETS)"))
        }
        let descSize = MemoryLayout<xdp_desc>.stride
        let rxMap = try sock.map(offsets.rx, entries: rxSize, entrySize: descSize, pgoff: Int(XDP_PGOFF_RX_RING))
        sock.rx = consumerRing(rxMap, offsets.rx, size: rxSize)
        let txMap = try sock.map(offsets.tx, entries: txSize, entrySize: descSize, pgoff: Int(XDP_PGOFF_TX_RING))
        sock.tx = producerRing(txMap, offsets.tx, size: txSize)
        let fillMap = try sock.map(offsets.fr, entries: fillSize, entrySize: 8, pgoff: Int(XDP_UMEM_PGOFF_FILL_RING))
        sock.fill = producerRing(fillMap, offsets.fr, size: fillSize)
        let compMap = try sock.map(offsets.cr, entries: compSize, entrySize: 8, pgoff: Int(XDP_UMEM_PGOFF_COMPLETION_RING))
        sock.completion = consumerRing(compMap, offsets.cr, size: compSize)

        prefill(&sock)

        var address = sockaddr_xdp()
        address.sxdp_family = UInt16(vs_af_xdp)
        address.sxdp_ifindex = device.ifindex
        address.sxdp_queue_id = queue
        if let shareWith {
            // A socket sharing a UMEM may not pass mode flags: it inherits zero-copy/copy and
            // need_wakeup from the UMEM's first socket.
            address.sxdp_flags = UInt16(XDP_SHARED_UMEM)
            address.sxdp_shared_umem_fd = UInt32(bitPattern: shareWith)
        } else {
            address.sxdp_flags = UInt16(XDP_USE_NEED_WAKEUP) | UInt16(mode == .zeroCopy ? XDP_ZEROCOPY : XDP_COPY)
        }
        // A queue whose last socket just closed can stay busy for about a second.
        var delay: useconds_t = 20_000
        var attempt = 0
        while true {
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(sock.fd, $0, socklen_t(MemoryLayout<sockaddr_xdp>.size))
                }
            }
            if rc == 0 { break }
            let err = errno
            attempt += 1
            guard err == EBUSY, attempt < 12 else {
                throw .system(SystemError("bind AF_XDP socket to \(device.name) queue \(queue) (\(mode.rawValue))", errno: err))
            }
            usleep(delay)
            delay = min(delay * 2, 400_000)
        }
        ok = true
        return sock
    }

    private static func producerRing(_ map: UnsafeMutableRawPointer, _ off: xdp_ring_offset, size: UInt32) -> xsk_ring_prod {
        var ring = xsk_ring_prod()
        ring.mask = size - 1
        ring.size = size
        ring.producer = (map + Int(off.producer)).assumingMemoryBound(to: UInt32.self)
        ring.consumer = (map + Int(off.consumer)).assumingMemoryBound(to: UInt32.self)
        ring.ring = map + Int(off.desc)
        ring.flags = (map + Int(off.flags)).assumingMemoryBound(to: UInt32.self)
        ring.cached_prod = ring.producer.pointee
        // cached_cons is kept `size` ahead so free-entry arithmetic needs no addition (libxdp's convention).
        ring.cached_cons = ring.consumer.pointee &+ size
        return ring
    }

    private static func consumerRing(_ map: UnsafeMutableRawPointer, _ off: xdp_ring_offset, size: UInt32) -> xsk_ring_cons {
        var ring = xsk_ring_cons()
        ring.mask = size - 1
        ring.size = size
        ring.producer = (map + Int(off.producer)).assumingMemoryBound(to: UInt32.self)
        ring.consumer = (map + Int(off.consumer)).assumingMemoryBound(to: UInt32.self)
        ring.ring = map + Int(off.desc)
        ring.flags = (map + Int(off.flags)).assumingMemoryBound(to: UInt32.self)
        ring.cached_prod = ring.producer.pointee
        ring.cached_cons = ring.consumer.pointee
        return ring
    }

    /// Registers the UMEM on this socket with room for TX metadata before every frame and the
    /// copy-mode software checksum (so a checksum requested through metadata is right on every
    /// device, veth included). Kernels before 6.11 refuse XDP_UMEM_TX_METADATA_LEN and those before
    /// 6.8 also XDP_UMEM_TX_SW_CSUM, both with EINVAL: each refusal falls back one step.
    /// Returns whether TX metadata is available.
    private mutating func registerUmem(_ umem: UmemArea) throws(DatapathError) -> Bool {
        let attempts: [(flags: Int32, metadataLength: UInt32)] = [
            (VS_XDP_UMEM_TX_METADATA_LEN | VS_XDP_UMEM_TX_SW_CSUM, vs_xsk_tx_metadata_len),
            (VS_XDP_UMEM_TX_SW_CSUM, vs_xsk_tx_metadata_len),
            (0, 0),
        ]
        for attempt in attempts {
            var reg = vs_xdp_umem_reg(
                addr: UInt64(UInt(bitPattern: umem.base)), len: UInt64(umem.byteCount), chunk_size: umem.frameSize,
                headroom: 0, flags: UInt32(attempt.flags), tx_metadata_len: attempt.metadataLength)
            if setsockopt(fd, vs_sol_xdp, XDP_UMEM_REG, &reg, socklen_t(MemoryLayout<vs_xdp_umem_reg>.size)) == 0 {
                return attempt.metadataLength > 0
            }
            guard errno == EINVAL, attempt.metadataLength > 0 else { break }
        }
        throw .system(SystemError("setsockopt: register UMEM"))
    }

    private mutating func setOption<T: BitwiseCopyable>(_ name: Int32, _ value: inout T, _ what: String) throws(DatapathError) {
        let rc = setsockopt(fd, vs_sol_xdp, name, &value, socklen_t(MemoryLayout<T>.size))
        guard rc == 0 else { throw .system(SystemError("setsockopt: \(what)")) }
    }

    private mutating func map(_ off: xdp_ring_offset, entries: UInt32, entrySize: Int, pgoff: Int) throws(DatapathError) -> UnsafeMutableRawPointer {
        let length = Int(off.desc) + Int(entries) * entrySize
        let memory = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off_t(pgoff))
        guard let memory, memory != MAP_FAILED else { throw .system(SystemError("mmap AF_XDP ring")) }
        mappings.append((memory, length))
        return memory
    }

    /// A socket whose four rings live in process memory instead of the kernel's, for driving a worker
    /// without a kernel (the pipeline benchmark plays the kernel's side). `fd` is -1 and the rings never
    /// ask for a wakeup, so the worker makes no syscall on them.
    static func inMemory(size: UInt32) -> XSKSocket {
        var sock = XSKSocket()
        let descBytes = Int(size) * MemoryLayout<xdp_desc>.stride
        let addrBytes = Int(size) * 8
        func ring(_ bytes: Int) -> UnsafeMutableRawPointer {
            // producer, consumer, flags (one cache line each), then the entries.
            let memory = UnsafeMutableRawPointer.allocate(byteCount: 192 + bytes, alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0, count: 192 + bytes)
            return memory
        }
        let offsets = xdp_ring_offset(producer: 0, consumer: 64, desc: 192, flags: 128)
        let rx = ring(descBytes), tx = ring(descBytes), fill = ring(addrBytes), comp = ring(addrBytes)
        sock.rx = consumerRing(rx, offsets, size: size)
        sock.tx = producerRing(tx, offsets, size: size)
        sock.fill = producerRing(fill, offsets, size: size)
        sock.completion = consumerRing(comp, offsets, size: size)
        sock.inMemoryRings = [rx, tx, fill, comp]
        return sock
    }

    /// Closes the socket and unmaps its rings. Frames it held must be reclaimed by the caller
    /// (FramePool.reclaimAll) — the kernel never returns them after this.
    mutating func close() {
        for (memory, length) in mappings { munmap(memory, length) }
        mappings = []
        for memory in inMemoryRings { memory.deallocate() }
        inMemoryRings = []
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        fillOutstanding = 0
        txOutstanding = 0
    }

    /// The kernel's statistics for this socket.
    func statistics() -> XSKStatistics {
        var stats = xdp_statistics()
        var length = socklen_t(MemoryLayout<xdp_statistics>.size)
        guard fd >= 0, getsockopt(fd, vs_sol_xdp, XDP_STATISTICS, &stats, &length) == 0 else { return XSKStatistics() }
        return XSKStatistics(
            rxDropped: stats.rx_dropped, rxInvalidDescs: stats.rx_invalid_descs,
            txInvalidDescs: stats.tx_invalid_descs, rxRingFull: stats.rx_ring_full,
            rxFillRingEmptyDescs: stats.rx_fill_ring_empty_descs, txRingEmptyDescs: stats.tx_ring_empty_descs)
    }
}
