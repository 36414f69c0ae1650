import CXDP
import Glibc

/// The memory a worker shares with the kernel: `frameCount` frames of `frameSize` bytes.
///
/// Every frame has exactly one owner at any moment, recorded in `owners`:
/// the worker's free pool, the worker itself (a frame in flight within a burst), or the kernel
/// through one particular socket (in that socket's fill/rx rings, or in its tx/completion rings).
/// The owner map is what makes the accounting invariant checkable and lets a closed socket's
/// frames be reclaimed exactly, even those the kernel took from the fill ring without
/// publishing it.
package final class UmemArea {
    let base: UnsafeMutableRawPointer
    let frameSize: UInt32
    let frameCount: UInt32
    var byteCount: Int { Int(frameSize) * Int(frameCount) }
    /// Whether the kernel took the registration with AF_XDP TX metadata room (`txMetadataRoom`
    /// bytes before every transmitted frame) and the copy-mode software checksum (kernel 6.8+).
    /// Set when the UMEM's first socket registers it.
    var hasTxMetadata = false

    /// Bytes reserved at the start of every frame for AF_XDP TX metadata. Registered with
    /// metadata, the kernel refuses any tx descriptor that starts closer to its chunk's start, so
    /// nothing may grow a frame into them (encapsulation, VLAN push).
    package static let txMetadataRoom = Int(vs_xsk_tx_metadata_len)

    init(frameCount: UInt32, frameSize: UInt32) throws(DatapathError) {
        precondition(frameSize.nonzeroBitCount == 1 && frameSize >= 2048, "frame size must be a power of two ≥ 2048")
        let length = Int(frameSize) * Int(frameCount)
        // On 2 MiB pages where the kernel gives them (transparent huge pages, asked for with
        // madvise): the worker reads every received frame's header, and with 4 KiB pages each of
        // the thousands of frames in circulation is a TLB miss of its own. Huge pages need a
        // 2 MiB-aligned range, so map 2 MiB more and trim.
        let hugePage = 2 << 20
        let mapped = length + hugePage
        guard let raw = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            throw .system(SystemError("mmap UMEM of \(length) bytes"))
        }
        let offset = (hugePage - Int(bitPattern: raw) % hugePage) % hugePage
        let memory = raw + offset
        if offset > 0 { munmap(raw, offset) }
        munmap(memory + length, mapped - offset - length)
        _ = madvise(memory, length, MADV_HUGEPAGE)
        // Fault it all in now (what MAP_POPULATE did), not on the packet path.
        if madvise(memory, length, 23 /* MADV_POPULATE_WRITE, Linux 5.14 */) != 0 {
            for page in stride(from: 0, to: length, by: 4096) { memory.storeBytes(of: 0, toByteOffset: page, as: UInt8.self) }
        }
        self.base = memory
        self.frameSize = frameSize
        self.frameCount = frameCount
    }

    deinit {
        munmap(base, byteCount)
    }
}

/// Owner codes in the frame owner map.
enum FrameOwner {
    static let pool: UInt16 = 0
    static let worker: UInt16 = 1
    /// Kernel-held through the socket in slot `s` of the worker: `kernelBase + s`.
    static let kernelBase: UInt16 = 2
}

/// A worker's free frames and the owner of every frame. Single-threaded: only the owning worker
/// touches it (or the control thread while the worker is parked). The worker frees its two
/// arrays (`destroy`, from its deinit).
///
/// Copyable, unlike the other raw-memory owners: as `~Copyable` with a `deinit` (tried for issue
/// 14), the packet path got slower — pipeline `lisp-encap` and `seed-encap` about 5–10 % more CPU
/// ns/packet in alternating runs against the copyable build, which matched the old one. Until the
/// compiler treats a noncopyable stored property of a class as cheaply, the pool stays copyable.
struct FramePool {
    let frameCount: UInt32
    let frameShift: UInt32
    private let stack: UnsafeMutablePointer<UInt64>
    private(set) var freeCount: Int
    let owners: UnsafeMutablePointer<UInt16>
    /// Transitions that found a frame with an unexpected owner: a duplicated or foreign address.
    /// Must stay 0; the frame is then left alone rather than recycled twice.
    private(set) var violations: UInt64 = 0

    init(frameCount: UInt32, frameSize: UInt32) {
        self.frameCount = frameCount
        self.frameShift = UInt32(frameSize.trailingZeroBitCount)
        stack = .allocate(capacity: Int(frameCount))
        owners = .allocate(capacity: Int(frameCount))
        owners.initialize(repeating: FrameOwner.pool, count: Int(frameCount))
        // Hand out low addresses first (stack top = frame 0).
        for i in 0..<Int(frameCount) {
            stack[i] = UInt64(Int(frameCount) - 1 - i) << UInt64(frameShift)
        }
        freeCount = Int(frameCount)
    }

    func destroy() {
        stack.deallocate()
        owners.deallocate()
    }

    @inline(__always)
    func frameIndex(_ address: UInt64) -> Int { Int(truncatingIfNeeded: address >> UInt64(frameShift)) }

    @inline(__always)
    func frameBase(_ address: UInt64) -> UInt64 { address & ~((1 << UInt64(frameShift)) - 1) }

    /// Takes a free frame (base address) for the worker; nil when the pool is empty.
    @inline(__always)
    mutating func allocate() -> UInt64? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        let address = stack[freeCount]
        owners[frameIndex(address)] = FrameOwner.worker
        return address
    }

    /// Returns a worker-owned frame (any address inside it) to the pool.
    @inline(__always)
    mutating func release(_ address: UInt64) {
        let index = frameIndex(address)
        guard index < Int(frameCount), owners[index] == FrameOwner.worker else {
            violations &+= 1
            return
        }
        owners[index] = FrameOwner.pool
        stack[freeCount] = frameBase(address)
        freeCount += 1
    }

    /// The worker gives a frame to the kernel through socket slot `slot` (fill or tx ring).
    @inline(__always)
    mutating func handToKernel(_ address: UInt64, slot: Int) {
        owners[frameIndex(address)] = FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot)
    }

    /// The kernel returns a frame through socket slot `slot` (rx or completion ring).
    /// False when that socket did not own it: the address is then ignored and counted.
    @inline(__always)
    mutating func takeFromKernel(_ address: UInt64, slot: Int) -> Bool {
        let index = frameIndex(address)
        guard index < Int(frameCount), owners[index] == FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot) else {
            violations &+= 1
            return false
        }
        owners[index] = FrameOwner.worker
        return true
    }

    /// Hands up to `count` free frames to the kernel through socket `slot`, writing their
    /// addresses into `ring` (a fill ring: `mask`, from index `start`); returns how many. The
    /// pool's state stays in registers (a loop of `allocate` + `handToKernel` reloads it per
    /// frame: its stores through raw pointers may alias anything).
    @inline(__always)
    mutating func fill(_ ring: UnsafeMutablePointer<UInt64>, mask: UInt32, start: UInt32, count: Int, slot: Int) -> Int {
        let n = min(count, freeCount)
        let code = FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot)
        let stack = self.stack, owners = self.owners, shift = UInt64(frameShift)
        let top = freeCount &- n, last = freeCount &- 1
        // Two passes: the fill ring's lines were last read by the kernel on another CPU, so each
        // store to them waits for its line, and stores leave the core in order. A loop of nothing
        // but those stores lets more of them wait at once than one that also writes `owners`
        // (measured: 8–33 → 5–9 TSC cycles per entry under overload, bench/results/archive/2026-11-25.md).
        for i in 0..<n {
            owners[Int(truncatingIfNeeded: stack[top &+ i] >> shift)] = code
        }
        for i in 0..<n {
            ring[Int((start &+ UInt32(truncatingIfNeeded: i)) & mask)] = stack[last &- i]
        }
        freeCount = top
        return n
    }

    /// Hands the frames of `count` descriptors to the kernel through socket `slot`, copying the
    /// descriptors into `ring` (a tx ring: `mask`, from index `start`); returns their bytes. One
    /// pass with the pool's state in registers.
    @inline(__always)
    mutating func transmit(_ descriptors: UnsafePointer<xdp_desc>, count: Int, into ring: UnsafeMutablePointer<xdp_desc>,
                           mask: UInt32, start: UInt32, slot: Int) -> UInt64 {
        let code = FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot)
        let owners = self.owners, shift = UInt64(frameShift)
        var bytes: UInt64 = 0
        for i in 0..<count {
            let desc = descriptors[i]
            ring[Int((start &+ UInt32(truncatingIfNeeded: i)) & mask)] = desc
            owners[Int(truncatingIfNeeded: desc.addr >> shift)] = code
            bytes &+= UInt64(desc.len)
        }
        return bytes
    }

    /// Frames the kernel returns through socket `slot` — `count` addresses of `ring` (a completion
    /// ring: `mask`, from index `start`) — go straight back to the pool (takeFromKernel + release),
    /// in one pass with the pool's state in registers. An address the socket did not own is
    /// ignored and counted, as in takeFromKernel.
    @inline(__always)
    mutating func recycle(_ ring: UnsafePointer<UInt64>, mask: UInt32, start: UInt32, count: Int, slot: Int) {
        let code = FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot)
        let stack = self.stack, owners = self.owners, shift = UInt64(frameShift), frames = Int(frameCount)
        let baseMask = ~((UInt64(1) << shift) &- 1)
        var top = freeCount
        var bad: UInt64 = 0
        for i in 0..<count {
            let address = ring[Int((start &+ UInt32(truncatingIfNeeded: i)) & mask)]
            let index = Int(truncatingIfNeeded: address >> shift)
            guard index < frames, owners[index] == code else {
                bad &+= 1
                continue
            }
            owners[index] = FrameOwner.pool
            stack[top] = address & baseMask
            top &+= 1
        }
        freeCount = top
        violations &+= bad
    }

    /// After socket `slot` is closed the kernel will never return its frames: take them all back.
    /// Returns how many were reclaimed.
    mutating func reclaimAll(slot: Int) -> Int {
        let code = FrameOwner.kernelBase &+ UInt16(truncatingIfNeeded: slot)
        var reclaimed = 0
        for index in 0..<Int(frameCount) where owners[index] == code {
            owners[index] = FrameOwner.pool
            stack[freeCount] = UInt64(index) << UInt64(frameShift)
            freeCount += 1
            reclaimed += 1
        }
        return reclaimed
    }

    /// Frames per owner code, for the accounting invariant (control path only).
    func census() -> (pool: Int, worker: Int, kernel: [Int: Int]) {
        var pool = 0
        var worker = 0
        var kernel: [Int: Int] = [:]
        for index in 0..<Int(frameCount) {
            switch owners[index] {
            case FrameOwner.pool: pool += 1
            case FrameOwner.worker: worker += 1
            case let code: kernel[Int(code - FrameOwner.kernelBase), default: 0] += 1
            }
        }
        return (pool, worker, kernel)
    }
}
