import CXDP
import Foundation
import Glibc
import Synchronization

/// The generator for kernels that refuse live frames (GeneratorBackend.loop).
///
///     vsb-gen-PID:   loop-a ──veth──▶ loop-b [vswift_loopgen] ─┬─ clone ──▶ loop-a (back into the loop)
///                                                               └─ frame ──▶ g0 ──veth──▶ s0 (the switch)
///
/// A veth pair of its own in the generator namespace; `vswift_loopgen` on loop-b redirects every
/// frame it receives to a devmap holding loop-a and g0 with BPF_F_BROADCAST, so each pass puts one
/// frame into s0's XDP receive path and sends a clone round again. `population` frames are sent
/// into loop-a once (an AF_PACKET socket) from the generator thread, pinned to the generator CPU:
/// veth schedules loop-b's NAPI on the sending CPU and each pass reschedules it there, so the loop,
/// the clones and s0's receive (the switch's XDP program and the copy into its UMEM) all run in
/// softirq on the generator CPU, as with live frames. The switch CPU does only the switch's work.
///
/// Measured on the development VM (kernel 6.18, 2 vCPUs), generator CPU only: the loop alone
/// circulates about 6 Mpps; with the clone into g0 and an XDP-drop sink on s0 it offers 1.4–1.7
/// Mpps (page allocation and copy per clone), 1.5–1.8 into a switch's AF_XDP socket. Per frame this
/// is about 3× the cost of live frames (which offered > 5 Mpps), but still clearly more than an
/// AF_XDP switch forwards on veth here (0.6–0.7 Mpps with the sink's receive on the switch CPU).
/// The population hardly matters (32, 128 and 200 frames gave the same rate); it stays well below
/// veth's 256-entry ring, so the loop never overflows it. A loop that dies (a failed clone) is
/// reseeded by the thread's watchdog and counted.
// @unchecked: the setup fields are written by the generator thread before `ready.signal()` and
// read by the caller only after `ready.wait()`; `thread` and `stopped` belong to the caller,
// and `stop` joins the generator thread before releasing what it used; the run state is atomics,
// the run error a Mutex.
final class LoopGenerator: TrafficGenerator, @unchecked Sendable {
    let backend = GeneratorBackend.loop

    static let population = 64
    /// The watchdog's period, and how long the frame count may stand still while running before
    /// the loop is seeded again.
    static let watchPeriodMicroseconds: useconds_t = 1000
    static let stallSeconds = 0.02

    private enum State {
        static let paused = 0
        static let running = 1
        static let exit = 2
    }

    private(set) var sourceMAC: [UInt8] = []
    let loopA: String
    let loopB: String
    private let namespace: String
    private let flows: Int
    private let state = Atomic<Int>(State.paused)
    /// Set by the thread once it has stopped the loop after seeing `paused`.
    private let idle = Atomic<Bool>(true)
    private let exited = Atomic<Bool>(false)
    private let reseedCount = Atomic<Int>(0)
    private let runError = Mutex<String?>(nil)
    private var setupError: Error?
    private var program: GeneratorProgram?
    private var linkFD: Int32 = -1
    private var packetFD: Int32 = -1
    private var thread: pthread_t?
    private var stopped = false

    /// Loop pairs get distinct names, so two generators (vswift's and OVS's VXLAN frames) can
    /// share the generator namespace.
    private static let instances = Atomic<Int>(0)

    init(_ setup: GeneratorSetup) throws {
        namespace = setup.namespace
        flows = setup.flows
        let index = Self.instances.wrappingAdd(1, ordering: .relaxed).oldValue
        loopA = "vsbloop\(index)a"
        loopB = "vsbloop\(index)b"
        let ip = systemTool("ip")
        do {
            try runCommand([ip, "-n", namespace, "link", "add", loopA, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
                            "peer", "name", loopB, "numtxqueues", "1", "numrxqueues", "1"])
        } catch BenchError.failed(let why) {
            throw GeneratorUnavailable(backend: .loop, reason: "cannot create the loop's veth pair: \(why)")
        }
        for device in [loopA, loopB] { try runCommand([ip, "-n", namespace, "link", "set", device, "up"]) }

        let ready = DispatchSemaphore(value: 0)
        do {
            thread = try Threads.start { [self] in
                var frame: [UInt8] = []
                do {
                    try NetworkNamespace.enter(setup.namespace)
                    try pinCurrentThread(to: setup.cpu)
                    frame = try attach(setup)
                } catch {
                    setupError = error
                }
                ready.signal()
                if setupError == nil { watch(frame: frame) }
                exited.store(true, ordering: .releasing)
            }
        } catch {
            removeLoop()
            throw error
        }
        ready.wait()
        if let setupError {
            stop()
            throw setupError
        }
        try probe()
    }

    /// Loads the program onto loop-b, fills the devmap, opens the seeding socket; returns the frame.
    private func attach(_ setup: GeneratorSetup) throws -> [UInt8] {
        let program = try GeneratorProgram(path: setup.objectPath)
        self.program = program
        let programFD = try program.object.programFD("vswift_loopgen")
        let portsFD = try program.object.mapFD("vsb_loop_ports")
        let g0 = try deviceIdentity(setup.device, namespace: setup.namespace)
        let a = try deviceIdentity(loopA, namespace: setup.namespace)
        let b = try deviceIdentity(loopB, namespace: setup.namespace)
        sourceMAC = g0.mac
        try program.configure(flows: setup.flows, running: false)
        // Slot 0 gets the clone, the last slot the frame itself (the kernel clones for all but the last).
        for (slot, ifindex) in [(UInt32(0), a.ifindex), (1, g0.ifindex)] {
            var key = slot, value = ifindex
            guard bpf_map_update_elem(portsFD, &key, &value, 0) == 0 else {
                throw GeneratorUnavailable(backend: .loop, reason: "devmap slot \(slot) (ifindex \(ifindex)): \(errnoText())")
            }
        }
        let link = vs_xdp_link_create(programFD, Int32(b.ifindex), UInt32(XDP_FLAGS_DRV_MODE))
        guard link >= 0 else {
            throw GeneratorUnavailable(backend: .loop, reason: "attach vswift_loopgen to \(loopB) (native XDP): \(errnoText(-link))")
        }
        linkFD = link
        packetFD = PacketSocket.open(ifindex: a.ifindex)
        guard packetFD >= 0 else { throw BenchError.failed("AF_PACKET socket on \(loopA): \(errnoText())") }
        return setup.frame(sourceMAC: g0.mac)
    }

    /// The loop must really circulate before anything is measured with it: kernels without devmap
    /// broadcast, or whose veth refuses redirected frames, say so here.
    private func probe() throws {
        let before = framesGenerated
        start()
        let deadline = monotonicSeconds() + 0.5
        while framesGenerated &- before < 10_000 && monotonicSeconds() < deadline && failure == nil { usleep(5000) }
        pause()
        let produced = framesGenerated &- before
        if let failure { stop(); throw GeneratorUnavailable(backend: .loop, reason: failure) }
        if produced < 10_000 {
            stop()
            throw GeneratorUnavailable(backend: .loop, reason: "the loop produced only \(produced) frames in 0.5 s (devmap broadcast or veth XDP redirect not working)")
        }
        reseedCount.store(0, ordering: .relaxed)
    }

    /// The generator thread: starts and stops the loop as `state` says, and reseeds it if it dies.
    private func watch(frame: [UInt8]) {
        var running = false
        var lastCount: UInt64 = 0
        var lastProgress = monotonicSeconds()
        while true {
            let wanted = state.load(ordering: .acquiring)
            if wanted == State.exit {
                if running { setRunning(false) }
                return
            }
            if wanted == State.running && !running {
                running = setRunning(true) && seed(frame)
                lastCount = framesGenerated
                lastProgress = monotonicSeconds()
                if !running { state.store(State.paused, ordering: .releasing) }
            } else if wanted == State.paused && running {
                setRunning(false)
                running = false
                waitUntilQuiet()
                idle.store(true, ordering: .releasing)
            } else if wanted == State.paused {
                idle.store(true, ordering: .releasing)
            } else {
                let count = framesGenerated
                let now = monotonicSeconds()
                if count != lastCount {
                    lastCount = count
                    lastProgress = now
                } else if now - lastProgress > Self.stallSeconds {
                    reseedCount.wrappingAdd(1, ordering: .relaxed)
                    if !seed(frame) { state.store(State.paused, ordering: .releasing) }
                    lastProgress = now
                }
            }
            usleep(Self.watchPeriodMicroseconds)
        }
    }

    @discardableResult
    private func setRunning(_ on: Bool) -> Bool {
        do {
            try program?.configure(flows: flows, running: on)
            return true
        } catch {
            fail("\(error)")
            return false
        }
    }

    /// Sends the population into loop-a from this thread (so loop-b's NAPI runs on this CPU).
    private func seed(_ frame: [UInt8]) -> Bool {
        for _ in 0..<Self.population {
            let sent = send(packetFD, frame, frame.count, 0)
            guard sent == frame.count else {
                fail("seed the loop on \(loopA): \(errnoText())")
                return false
            }
        }
        return true
    }

    /// Once `running` is 0 each frame is dropped on its next pass: the count stops within microseconds.
    private func waitUntilQuiet() {
        var last = framesGenerated
        let deadline = monotonicSeconds() + 1
        repeat {
            usleep(500)
            let now = framesGenerated
            if now == last { return }
            last = now
        } while monotonicSeconds() < deadline
    }

    private func fail(_ why: String) {
        runError.withLock { if $0 == nil { $0 = why } }
    }

    func start() {
        idle.store(false, ordering: .releasing)
        state.store(State.running, ordering: .releasing)
    }

    func pause() {
        idle.store(false, ordering: .releasing)
        state.store(State.paused, ordering: .releasing)
        let deadline = monotonicSeconds() + 5
        while !idle.load(ordering: .acquiring) && !exited.load(ordering: .acquiring) && monotonicSeconds() < deadline {
            usleep(500)
        }
    }

    var framesGenerated: UInt64 { program?.frames ?? 0 }

    var failure: String? { runError.withLock { $0 } }

    var remark: String? {
        let reseeds = reseedCount.load(ordering: .relaxed)
        return reseeds == 0 ? nil : "the loop generator's frames died out \(reseeds) time(s) and were seeded again (a gap of about \(Int(Self.stallSeconds * 1000)) ms each)"
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        state.store(State.exit, ordering: .releasing)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        if linkFD >= 0 { close(linkFD); linkFD = -1 }
        if packetFD >= 0 { close(packetFD); packetFD = -1 }
        program = nil
        removeLoop()
    }

    private func removeLoop() {
        _ = try? runCommand([systemTool("ip"), "-n", namespace, "link", "del", loopA])
    }

    deinit { stop() }
}
