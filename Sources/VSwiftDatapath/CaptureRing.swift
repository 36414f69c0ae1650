import Glibc
import Synchronization

/// Which way a captured frame went through its port (pcapng's epb_flags direction bits: inbound 1,
/// outbound 2).
public enum CaptureDirection: UInt8, Sendable, Codable {
    case rx = 1
    case tx = 2
}

/// One frame taken from a capture ring.
public struct CapturedFrame: Sendable, Equatable {
    /// Nanoseconds since the Unix epoch (CLOCK_REALTIME, read once per burst).
    public var timestamp: UInt64
    /// The frame's length on the wire; `bytes` holds at most the snap length of it.
    public var originalLength: UInt32
    public var direction: CaptureDirection
    public var bytes: [UInt8]

    public init(timestamp: UInt64, originalLength: UInt32, direction: CaptureDirection, bytes: [UInt8]) {
        self.timestamp = timestamp
        self.originalLength = originalLength
        self.direction = direction
        self.bytes = bytes
    }
}

/// One worker's copies of the frames of one capture: a bounded single-producer (the worker),
/// single-consumer (the control thread) ring of fixed-size records, allocated once when the
/// capture starts. The worker never waits and never allocates: a frame that finds the ring full
/// is counted in `dropped` and forwarding goes on. (As the tunnel resolver's request ring, with
/// `head` published by release and read by acquire.)
///
/// Record layout, `stride` bytes each: timestamp (UInt64 ns), original length (UInt32), captured
/// length (UInt32), direction (UInt8), then the frame's first bytes from offset `headerBytes`.
package final class CaptureRing: @unchecked Sendable {
    static let headerBytes = 32
    package let capacity: Int
    package let snapLength: Int
    let stride: Int
    private let records: UnsafeMutableRawPointer
    private let head = Atomic<Int>(0)  // next record to write (worker)
    private let tail = Atomic<Int>(0)  // next record to read (control thread)
    /// Written by the worker only (relaxed load and store), read by anyone.
    private let droppedCount = Atomic<UInt64>(0)

    /// `capacity` is rounded up to a power of two.
    package init(capacity: Int, snapLength: Int) {
        var size = 1
        while size < max(capacity, 2) { size <<= 1 }
        self.capacity = size
        self.snapLength = snapLength
        self.stride = (Self.headerBytes + snapLength + 63) & ~63
        records = .allocate(byteCount: size * stride, alignment: 64)
    }

    deinit { records.deallocate() }

    package var dropped: UInt64 { droppedCount.load(ordering: .relaxed) }

    // MARK: Worker side

    /// Copies a frame into the next record without publishing it; false (the drop counted) when
    /// the ring is full. A record written but not published is overwritten by the next `write`.
    @inline(__always)
    func write(_ frame: UnsafeRawPointer, length: Int, timestamp: UInt64, direction: CaptureDirection) -> Bool {
        let h = head.load(ordering: .relaxed)
        guard h &- tail.load(ordering: .acquiring) < capacity else {
            droppedCount.store(droppedCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            return false
        }
        let record = records + (h & (capacity - 1)) * stride
        let kept = min(length, snapLength)
        record.storeBytes(of: timestamp, as: UInt64.self)
        record.storeBytes(of: UInt32(truncatingIfNeeded: length), toByteOffset: 8, as: UInt32.self)
        record.storeBytes(of: UInt32(truncatingIfNeeded: kept), toByteOffset: 12, as: UInt32.self)
        record.storeBytes(of: direction.rawValue, toByteOffset: 16, as: UInt8.self)
        memcpy(record + Self.headerBytes, frame, kept)
        return true
    }

    /// Makes the record last written readable.
    @inline(__always)
    func publish() {
        head.store(head.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    /// `write` and `publish`.
    @inline(__always)
    package func push(_ frame: UnsafeRawPointer, length: Int, timestamp: UInt64, direction: CaptureDirection) {
        if write(frame, length: length, timestamp: timestamp, direction: direction) { publish() }
    }

    // MARK: Control side

    /// Takes up to `limit` published records, oldest first.
    package func drain(into frames: inout [CapturedFrame], limit: Int) {
        var t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        var taken = 0
        while t != h && taken < limit {
            let record = UnsafeRawPointer(records + (t & (capacity - 1)) * stride)
            let kept = Int(min(record.load(fromByteOffset: 12, as: UInt32.self), UInt32(snapLength)))
            frames.append(CapturedFrame(
                timestamp: record.load(as: UInt64.self),
                originalLength: record.load(fromByteOffset: 8, as: UInt32.self),
                direction: CaptureDirection(rawValue: record.load(fromByteOffset: 16, as: UInt8.self)) ?? .rx,
                bytes: [UInt8](UnsafeRawBufferPointer(start: record + Self.headerBytes, count: kept))))
            t &+= 1
            taken += 1
        }
        tail.store(t, ordering: .releasing)
    }

    /// Records published and not yet drained.
    package var pending: Int { head.load(ordering: .acquiring) &- tail.load(ordering: .relaxed) }

    /// Nanoseconds since the Unix epoch.
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
