import NIOCore
import Synchronization

/// What one client can make vswiftd hold. The defaults let the largest real request through (an
/// add-flows of a million flows, ~110 MB of JSON) while a few hostile clients cannot take the
/// daemon's memory: without them six connections held 3.1 GB and a client that never read made
/// the daemon buffer replies at ~30 MB/s.
public struct ControlLimits: Sendable {
    /// Request bytes (lines being received or carried out) of all connections together, beyond
    /// each connection's `perConnectionAllowance`: room for two of the largest requests, a tenth of
    /// this machine class's memory. A line that would go beyond it is refused (resource
    /// unavailable) and its connection closed.
    public var maxTotalRequestBytes = 512 << 20
    /// What each connection may hold without drawing on the shared total, so clients filling the
    /// total cannot stop others' ordinary (small) requests.
    public var perConnectionAllowance = 1 << 20
    /// Open connections; further ones get an error and are closed. vswiftctl uses one per command.
    public var maxConnections = 64
    /// Replies waiting for one client beyond this stop its reading and handling (NIO's write-buffer
    /// high water mark): one reply may be larger (a big dump-flows), never two.
    public var replyBufferBytes = 4 << 20
    /// A client whose waiting replies the socket has taken none of for this long is disconnected.
    public var slowReaderTimeout: TimeAmount = .seconds(30)

    public init() {}
}

/// The request bytes held by all connections beyond their allowances, with its cap.
final class RequestBudget: Sendable {
    let limit: Int
    private let held = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    var bytesHeld: Int { held.load(ordering: .relaxed) }

    func reserve(_ bytes: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            guard current + bytes <= limit else { return false }
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func release(_ bytes: Int) {
        held.subtract(bytes, ordering: .relaxed)
    }
}

/// One connection's share of the `RequestBudget`: grown by the line decoder as a request arrives,
/// released once the request has been carried out (or the connection is gone). Used on the
/// connection's event loop only.
final class RequestReservation {
    let budget: RequestBudget
    let allowance: Int
    private(set) var held = 0

    init(budget: RequestBudget, allowance: Int) {
        self.budget = budget
        self.allowance = allowance
    }

    /// Makes the reservation cover a request of `bytes`; false when the total cap forbids it.
    func cover(_ bytes: Int) -> Bool {
        let missing = bytes - allowance - held
        guard missing > 0 else { return true }
        guard budget.reserve(missing) else { return false }
        held += missing
        return true
    }

    func release() {
        budget.release(held)
        held = 0
    }
}

/// Open control connections, against `ControlLimits.maxConnections`.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    func enter(limit: Int) -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= limit { return true }
        count.subtract(1, ordering: .relaxed)
        return false
    }

    func leave() {
        count.subtract(1, ordering: .relaxed)
    }
}
