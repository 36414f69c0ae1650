import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

/// What the metrics endpoint (`vswiftd --metrics`) reports: the counters the datapath already
/// keeps, read when scraped (never counted for it on the packet path), as plain data. Taken in one
/// job of the service, so bridges, ports and flows are those of one moment.
public struct MetricsSnapshot: Sendable, Equatable {
    public struct Port: Sendable, Equatable {
        /// "" for an underlay device (in no bridge).
        public var bridge: String
        public var name: String
        /// "" (a device), "internal", "lisp", or "underlay".
        public var type: String
        public var statistics: PortStatisticsReport

        public init(bridge: String, name: String, type: String, statistics: PortStatisticsReport) {
            self.bridge = bridge
            self.name = name
            self.type = type
            self.statistics = statistics
        }
    }

    public struct Bridge: Sendable, Equatable {
        public var name: String
        public var ports: Int
        public var flows: Int

        public init(name: String, ports: Int, flows: Int) {
            self.name = name
            self.ports = ports
            self.flows = flows
        }
    }

    /// A worker's totals and cycle accounting (`dump-workers`) and its exact-match cache's answers.
    public struct Worker: Sendable, Equatable {
        public var worker: Int
        public var cpu: Int?
        public var rxPackets: UInt64
        public var txPackets: UInt64
        public var rounds: UInt64
        public var busyCycles: UInt64
        public var idleCycles: UInt64
        public var systemCallCycles: UInt64
        public var cacheHits: UInt64
        public var cacheMisses: UInt64

        public init(
            worker: Int, cpu: Int? = nil, rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rounds: UInt64 = 0,
            busyCycles: UInt64 = 0, idleCycles: UInt64 = 0, systemCallCycles: UInt64 = 0, cacheHits: UInt64 = 0,
            cacheMisses: UInt64 = 0
        ) {
            self.worker = worker
            self.cpu = cpu
            self.rxPackets = rxPackets
            self.txPackets = txPackets
            self.rounds = rounds
            self.busyCycles = busyCycles
            self.idleCycles = idleCycles
            self.systemCallCycles = systemCallCycles
            self.cacheHits = cacheHits
            self.cacheMisses = cacheMisses
        }
    }

    /// One of the flows with most packets, as dump-flows names it.
    public struct Flow: Sendable, Equatable {
        public var bridge: String
        public var priority: UInt16
        public var cookie: UInt64
        /// ovs-ofctl syntax without the priority; "" matches everything.
        public var match: String
        public var packets: UInt64
        public var bytes: UInt64

        public init(bridge: String, priority: UInt16, cookie: UInt64, match: String, packets: UInt64, bytes: UInt64) {
            self.bridge = bridge
            self.priority = priority
            self.cookie = cookie
            self.match = match
            self.packets = packets
            self.bytes = bytes
        }
    }

    /// The LISP control thread's message counters and map-cache size (issue 16); nil while it
    /// does not run.
    public struct LISPControl: Sendable, Equatable {
        public var sent: [String: UInt64]
        public var received: [String: UInt64]
        public var refused: [String: UInt64]
        public var mapCacheEntries: Int

        public init(sent: [String: UInt64] = [:], received: [String: UInt64] = [:], refused: [String: UInt64] = [:], mapCacheEntries: Int = 0) {
            self.sent = sent
            self.received = received
            self.refused = refused
            self.mapCacheEntries = mapCacheEntries
        }
    }

    public var lispControl: LISPControl?
    public var bridges: [Bridge] = []
    /// Bridge ports in `show`'s order (ports whose device is missing left out), then underlays.
    public var ports: [Port] = []
    public var workers: [Worker] = []
    /// The busiest flows of all bridges, most packets first (at most the number asked for).
    public var topFlows: [Flow] = []

    public init(bridges: [Bridge] = [], ports: [Port] = [], workers: [Worker] = [], topFlows: [Flow] = []) {
        self.bridges = bridges
        self.ports = ports
        self.workers = workers
        self.topFlows = topFlows
    }
}

extension SwitchService {
    /// The counters of every bridge, port and worker, and the `topFlows` flows with most packets
    /// (0: none). Reads counters only: costs one pass over the flow tables when `topFlows` > 0,
    /// and nothing on the packet path.
    public func metricsSnapshot(topFlows: Int) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        for bridge in bridges {
            snapshot.bridges.append(
                MetricsSnapshot.Bridge(name: bridge.name, ports: bridge.ports.count, flows: flowTables.count(bridge: bridge.name)))
            for port in bridge.ports where port.error == nil {
                guard let statistics = datapath.statistics(port: port.name) else { continue }
                snapshot.ports.append(
                    MetricsSnapshot.Port(
                        bridge: bridge.name, name: port.name, type: port.type, statistics: PortStatisticsReport(statistics)))
            }
        }
        for underlay in underlays where underlay.error == nil {
            guard let statistics = datapath.statistics(port: underlay.name) else { continue }
            snapshot.ports.append(
                MetricsSnapshot.Port(bridge: "", name: underlay.name, type: "underlay", statistics: PortStatisticsReport(statistics)))
        }
        snapshot.workers = datapath.workerStatistics().map { s in
            MetricsSnapshot.Worker(
                worker: s.worker, cpu: s.cpu, rxPackets: s.rxPackets, txPackets: s.txPackets, rounds: s.cycles.rounds,
                busyCycles: s.cycles.busy, idleCycles: s.cycles.idle, systemCallCycles: s.cycles.systemCalls,
                cacheHits: s.cacheHits, cacheMisses: s.cacheMisses)
        }
        if topFlows > 0 {
            snapshot.topFlows = flowTables.busiest(limit: topFlows, bridges: bridges.map(\.name)).map { entry in
                MetricsSnapshot.Flow(
                    bridge: entry.bridge, priority: entry.id.priority, cookie: entry.flow.cookie,
                    match: FlowFormatter.match(entry.id.match, priority: FlowRule.defaultPriority),
                    packets: entry.statistics.packets, bytes: entry.statistics.bytes)
            }
        }
        if let status = try? lispStatus() {
            snapshot.lispControl = MetricsSnapshot.LISPControl(
                sent: status.report.sent, received: status.report.received, refused: status.report.refused,
                mapCacheEntries: status.report.mapCache.count)
        }
        return snapshot
    }
}

extension FlowTables {
    /// The `limit` flows of `bridges` with most packets, most first (ties: bridge order, then
    /// table order). One pass, keeping the best `limit` in a small sorted array: a million flows
    /// cost a million counter reads and almost no moves.
    func busiest(limit: Int, bridges: [String]) -> [(bridge: String, id: FlowIdentity, flow: InstalledFlow, statistics: RuleStatistics)] {
        var best: [(bridge: String, id: FlowIdentity, flow: InstalledFlow, statistics: RuleStatistics)] = []
        best.reserveCapacity(limit + 1)
        for bridge in bridges {
            guard let table = tables[bridge] else { continue }
            for (id, flow) in table.flows {
                let statistics = datapath.ruleStatistics(counterSlot: flow.counterSlot)
                if best.count == limit, let last = best.last, statistics.packets <= last.statistics.packets { continue }
                let position = best.firstIndex { statistics.packets > $0.statistics.packets } ?? best.count
                best.insert((bridge, id, flow, statistics), at: position)
                if best.count > limit { best.removeLast() }
            }
        }
        return best
    }
}
