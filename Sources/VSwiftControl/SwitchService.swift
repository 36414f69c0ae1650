import Dispatch
import Foundation
import Logging
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

/// The switch as the control socket sees it: bridges, ports with their OpenFlow numbers and OVS
/// types/options, mapped onto the datapath. An actor: requests from several clients never
/// interleave half-way. Its jobs run on a serial queue of its own (`ControlQueueExecutor`), not
/// on Swift's cooperative pool, because the datapath work may block (it parks workers, and a queue
/// can take a second to become bindable) and a million-flow load keeps it busy for seconds.
///
/// Its work is split by job: requests to handlers and protocol errors (`SwitchService+Dispatch`),
/// bridges, ports and underlays (`+Topology`), flow commands and flow parsing (`+Flows`), the saved
/// configuration, its journal and undo (`+Persistence`). The flow tables are `FlowTables`.
public actor SwitchService {
    struct Port {
        let name: String
        let ofport: UInt32
        let type: String
        let options: [String: String]
        /// Set when the port is configured but not in the datapath (its device was missing at restore).
        var error: String? = nil
    }

    struct Bridge {
        let name: String
        /// In port-number order; the internal port (LOCAL) is kept last.
        var ports: [Port]
        var nextOfport: UInt32 = 1
    }

    public nonisolated let systemID: String
    // The state below is the actor's (each file of the service reads and changes it).
    let datapath: any DatapathControl
    let logger: Logger
    private let executor = ControlQueueExecutor()
    /// In creation order.
    var bridges: [Bridge] = []
    /// Underlay devices (add-underlay), in order of addition; the error is set when the device
    /// could not be attached at restore.
    var underlays: [(name: String, error: String?)] = []
    let flowTables: FlowTables
    let clock: MonotonicClock
    /// Where the configuration is saved after every change; nil keeps it in memory only.
    let store: ConfigStore?
    /// The configuration changed since it was last saved.
    var unsaved = false
    /// Generation of the configuration file last written or restored (see `ConfigJournal`).
    var generation: UInt64 = 0
    /// Size of that file and of its journal.
    var savedBytes = 0
    var journalBytes = 0
    /// The file and its journal hold every change made before the current request, so the
    /// request's change may be appended to the journal (false after a failed save).
    var journalCanContinue = true
    /// Flow changes go to the journal once the configuration file is at least this big (a small
    /// file costs less to rewrite than to replay, and stays easy to read); nil never journals.
    let journalFromBytes: Int?
    /// Runs `expireFlows` every second once started.
    var expiryTask: Task<Void, Never>?
    /// Running port captures (SwitchService+Capture.swift).
    var captures = CaptureSessions()
    /// The LISP control configuration as saved, and checked (SwitchService+LISP.swift).
    var lisp = LISPSavedConfig()
    var lispValidated = ValidatedLISPConfig()
    /// The LISP control thread (vswiftd's); nil keeps the configuration without running it.
    let lispControl: LISPControlService?
    /// What the thread was last given, and why its socket could not be opened.
    var lispSettings = LISPControlSettings()
    var lispError: String?

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The flow a new bridge starts with, as in OVS: switch like a learning switch.
    public static let defaultFlow = FlowRule(priority: 0, match: Match(), actions: [.normal])

    public init(
        datapath: any DatapathControl, systemID: String = UUID().uuidString.lowercased(), logger: Logger,
        store: ConfigStore? = nil, clock: @escaping MonotonicClock = monotonicClock,
        counterSlots: Int = DatapathLimits.maxRules, journalFromBytes: Int? = 1 << 20, lispControl: LISPControlService? = nil
    ) {
        self.journalFromBytes = journalFromBytes
        self.lispControl = lispControl
        self.datapath = datapath
        self.systemID = systemID
        self.logger = logger
        self.store = store
        self.clock = clock
        self.flowTables = FlowTables(datapath: datapath, clock: clock, counterSlots: counterSlots)
    }

    deinit {
        expiryTask?.cancel()
    }
}

/// Why a saved configuration could not be brought back.
public struct RestoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The serial executor of a `SwitchService`: its jobs run one at a time on a dispatch queue of its
/// own, where blocking (on the datapath, or on `DispatchQueue.concurrentPerform` spreading a big
/// parse over all cores) starves no other task.
final class ControlQueueExecutor: SerialExecutor {
    private let queue = DispatchQueue(label: "vswift.control")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // Holds the executor until the job has run (the job may release the last reference to
        // the actor, and with it this executor).
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}
