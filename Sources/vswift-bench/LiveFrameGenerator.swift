import CXDP
import Foundation
import Glibc
import VSwiftPacket
import Synchronization

/// The live-frames generator (GeneratorBackend.live): vswift_trafficgen.bpf.o run through BPF_PROG_RUN in live-frames mode
/// (`BPF_F_TEST_XDP_LIVE_FRAMES`, the technique behind xdp-trafficgen) in a loop, on a thread of its
/// own that entered the generator namespace and is pinned to the generator CPU.
///
/// In live mode the kernel builds real frames from the template in a page pool, runs the program
/// on each, and carries out its verdict: XDP_TX is turned into a redirect out of the ingress device
/// (g0), whose veth transmit hands the frame to the peer's (s0's) XDP receive path. The peer must
/// have an XDP program attached for veth to accept redirected frames; the switch under test's is.
/// The receive side's work (s0's XDP program and the copy into the switch's UMEM) runs in the
/// generator's syscall on the generator CPU, so it does not load the switch's CPU.
///
/// Live mode recycles its pages without copying the template in again, so a receiver that rewrites
/// frames in XDP (the switch's cache encapsulating in LISP) would leave them unusable: the program
/// restores the template's head into every frame (`GeneratorProgram.restoreHeader`).
// @unchecked: the setup fields are written by the generator thread before `ready.signal()` and
// read by the caller only after `ready.wait()`; `thread` and `program`'s release belong to the caller,
// and `stop` joins the generator thread before releasing what it used; the run state is atomics,
// the run error a Mutex.
final class LiveFrameGenerator: TrafficGenerator, @unchecked Sendable {
    let backend = GeneratorBackend.live
    let remark: String? = nil

    private enum State {
        static let paused = 0
        static let running = 1
        static let exit = 2
    }

    /// Frames per BPF_PROG_RUN call: minutes at the rates seen here. Each live-mode call sets up
    /// a page pool and tears it down, and on the test machine (kernel 6.18) a call spends about
    /// 25 ms asleep outside its packet loop (the generator thread in D state; most likely the
    /// page-pool teardown waiting while frames are still in flight — not pinned down), leaving the
    /// switch without traffic meanwhile: with 2^16 frames per call the generator CPU idled 60% of
    /// the time and offered < 2 Mpps instead of > 5. So calls are long, and `pause()` interrupts the
    /// running call with a signal (the kernel's test loop checks for pending signals and returns
    /// EINTR).
    static let repeatPerCall: UInt32 = 1 << 30
    /// Frames per batch inside the kernel (live mode allows up to 256).
    static let batchSize: UInt32 = 64

    let device: String
    let frameSize: Int
    private(set) var sourceMAC: [UInt8] = []
    private(set) var ifindex: UInt32 = 0
    private let state = Atomic<Int>(State.paused)
    /// Set by the generator thread while it is outside BPF_PROG_RUN because it saw `paused`.
    private let idle = Atomic<Bool>(true)
    /// Set by the generator thread when it ends.
    private let exited = Atomic<Bool>(false)
    private let runError = Mutex<String?>(nil)
    private var setupError: Error?
    private var program: GeneratorProgram?
    private var thread: pthread_t?

    init(_ setup: GeneratorSetup) throws {
        self.device = setup.device
        self.frameSize = setup.frameSize
        Self.installWakeHandler()
        let ready = DispatchSemaphore(value: 0)
        thread = try Threads.start { [self] in
            var frame: UnsafeMutableRawPointer?
            var programFD: Int32 = -1
            do {
                try NetworkNamespace.enter(setup.namespace)
                try pinCurrentThread(to: setup.cpu)
                let program = try GeneratorProgram(path: setup.objectPath)
                programFD = try program.object.programFD("vswift_trafficgen")
                let identity = try deviceIdentity(setup.device, namespace: setup.namespace)
                ifindex = identity.ifindex
                sourceMAC = identity.mac
                try program.configure(flows: setup.flows)
                let template = setup.frame(sourceMAC: identity.mac)
                try program.restoreHeader(from: template)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: template.count, alignment: 64)
                template.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: template.count) }
                // The probe: one live frame. Kernels that refuse the mode say so here (EPERM), not
                // minutes into a run. (No XDP program is on s0 yet, so the frame is dropped.)
                let rc = vs_xdp_prog_run_live(programFD, buffer, UInt32(template.count), 1, ifindex, 1)
                if rc < 0 {
                    buffer.deallocate()
                    throw GeneratorUnavailable(backend: .live, reason: "BPF_PROG_RUN with live frames on \(setup.device): \(errnoText(-rc))")
                }
                frame = buffer
                self.program = program
            } catch {
                setupError = error
            }
            ready.signal()
            if let frame {
                self.loop(programFD: programFD, frame: frame)
                frame.deallocate()
            }
            self.exited.store(true, ordering: .releasing)
        }
        ready.wait()
        if let setupError {
            stop()
            throw setupError
        }
    }

    private func loop(programFD: Int32, frame: UnsafeMutableRawPointer) {
        while true {
            let current = state.load(ordering: .acquiring)
            if current == State.exit { return }
            if current == State.paused {
                idle.store(true, ordering: .releasing)
                usleep(1000)
                continue
            }
            idle.store(false, ordering: .releasing)
            let rc = vs_xdp_prog_run_live(programFD, frame, UInt32(frameSize), Self.repeatPerCall, ifindex, Self.batchSize)
            if rc < 0 && rc != -EINTR {
                let why = "BPF_PROG_RUN (live frames) on \(device) failed: \(errnoText(-rc))"
                runError.withLock { $0 = why }
                state.store(State.paused, ordering: .releasing)
            }
        }
    }

    func start() { state.store(State.running, ordering: .releasing) }

    /// Stops generating and returns once the generator thread is out of BPF_PROG_RUN.
    func pause() {
        // The thread sets `idle` only after it has seen `paused`, so a stale `idle` cannot fool us.
        idle.store(false, ordering: .releasing)
        state.store(State.paused, ordering: .releasing)
        interrupt(until: idle)
    }

    /// Signals the generator thread until `flag` is set: a signal that lands just before the thread
    /// enters the syscall does not interrupt it, hence the loop.
    private func interrupt(until flag: borrowing Atomic<Bool>) {
        guard let thread else { return }
        let deadline = monotonicSeconds() + 5
        while !flag.load(ordering: .acquiring) && !exited.load(ordering: .acquiring) && monotonicSeconds() < deadline {
            pthread_kill(thread, Self.wakeSignal)
            usleep(2000)
        }
    }

    /// The signal that interrupts BPF_PROG_RUN; its handler does nothing.
    static let wakeSignal = SIGUSR1
    static func installWakeHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(wakeSignal, &action, nil)
    }

    /// Why generation stopped, if it failed. Frames the program found not to be its template mean
    /// a receiver wrote beyond the header it restores: the offered load is then not what it seems.
    var failure: String? {
        if let why = runError.withLock({ $0 }) { return why }
        guard let bad = program?.badFrames, bad > 0 else { return nil }
        return "the live generator found \(bad) frames on \(device) that were no longer its template "
            + "(a receiver rewrote more than the first \(GeneratorProgram.headerMaximum) bytes it restores) and dropped them"
    }

    /// Frames the program has generated (all CPUs).
    var framesGenerated: UInt64 { program?.frames ?? 0 }

    /// Ends the thread (after its current BPF_PROG_RUN call) and releases the program.
    func stop() {
        state.store(State.exit, ordering: .releasing)
        interrupt(until: exited)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        program = nil
    }

    deinit { stop() }
}
