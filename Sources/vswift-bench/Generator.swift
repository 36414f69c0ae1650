import CXDP
import Foundation
import Glibc
import VSwiftPacket
import Synchronization

/// The traffic generator: vswift_trafficgen.bpf.o run through BPF_PROG_RUN in live-frames mode
/// (`BPF_F_TEST_XDP_LIVE_FRAMES`, the technique behind xdp-trafficgen) in a loop, on a thread of its
/// own that entered the generator namespace and is pinned to the generator CPU.
///
/// In live mode the kernel builds real frames from the template in a page pool, runs the program
/// on each, and carries out its verdict: XDP_TX is turned into a redirect out of the ingress device
/// (g0), whose veth transmit hands the frame to the peer's (s0's) XDP receive path. The peer must
/// have an XDP program attached for veth to accept redirected frames; the switch under test's is.
/// The receive side's work (s0's XDP program and the copy into the switch's UMEM) runs in the
/// generator's syscall on the generator CPU, so it does not load the switch's CPU.
final class Generator: @unchecked Sendable {
    enum Action: UInt32 {
        case tx = 0
        case redirect = 1
    }

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
    let flows: Int
    private(set) var sourceMAC: [UInt8] = []
    private(set) var ifindex: UInt32 = 0
    private let state = Atomic<Int>(State.paused)
    /// Set by the generator thread while it is outside BPF_PROG_RUN because it saw `paused`.
    private let idle = Atomic<Bool>(true)
    /// Set by the generator thread when it ends.
    private let exited = Atomic<Bool>(false)
    private let lock = NSLock()
    private var runError: String?
    private var setupError: Error?
    private var object: LoadedBPFObject?
    private var statsFD: Int32 = -1
    private let statsBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: possibleCPUs * 2)
    private var thread: pthread_t?

    init(namespace: String, device: String, cpu: Int, objectPath: String, frameSize: Int, flows: Int,
         destinationMAC: [UInt8], action: Action = .tx, template fixedTemplate: [UInt8]? = nil) throws {
        self.device = device
        self.frameSize = frameSize
        self.flows = flows
        Self.installWakeHandler()
        let ready = DispatchSemaphore(value: 0)
        thread = try Threads.start { [self] in
            var frame: UnsafeMutableRawPointer?
            var programFD: Int32 = -1
            do {
                try NetworkNamespace.enter(namespace)
                try pinCurrentThread(to: cpu)
                let object = try LoadedBPFObject(path: objectPath)
                programFD = try object.programFD("vswift_trafficgen")
                let configFD = try object.mapFD("vsb_gen_config")
                statsFD = try object.mapFD("vsb_gen_stats")
                let identity = try deviceIdentity(device, namespace: namespace)
                ifindex = identity.ifindex
                sourceMAC = identity.mac
                // struct vsb_gen_config { u32 flows; u32 mode; u32 redirect_ifindex; u16 base_port; u16 pad; }
                var config = [UInt8](repeating: 0, count: 16)
                Self.put32(&config, 0, UInt32(flows))
                Self.put32(&config, 4, action.rawValue)
                Self.put32(&config, 8, ifindex)
                config[12] = UInt8(FrameTemplate.baseSourcePort & 0xff)
                config[13] = UInt8(FrameTemplate.baseSourcePort >> 8)
                var zero: UInt32 = 0
                guard bpf_map_update_elem(configFD, &zero, &config, 0) == 0 else {
                    throw BenchError.failed("configure the generator: \(errnoText())")
                }
                // A given template (LISP frames for decap) must be IPv4/UDP too: the program writes its
                // UDP source port.
                let template = fixedTemplate ?? FrameTemplate.udp(size: frameSize, source: identity.mac, destination: destinationMAC)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: template.count, alignment: 64)
                template.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: template.count) }
                frame = buffer
                self.object = object
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
                lock.withLock {
                    runError = "BPF_PROG_RUN (live frames) on \(device) failed: \(errnoText(-rc))"
                }
                state.store(State.paused, ordering: .releasing)
            }
        }
    }

    private static func put32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
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

    /// Why generation stopped, if it failed.
    var failure: String? { lock.withLock { runError } }

    /// Frames the program has generated (all CPUs).
    var framesGenerated: UInt64 {
        guard statsFD >= 0 else { return 0 }
        return sumPerCPU(mapFD: statsFD, key: 0, fields: 1, buffer: statsBuffer)[0]
    }

    /// Ends the thread (after its current BPF_PROG_RUN call) and releases the program.
    func stop() {
        state.store(State.exit, ordering: .releasing)
        interrupt(until: exited)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        object = nil
    }

    deinit {
        stop()
        statsBuffer.deallocate()
    }
}

/// The generator's template: Ethernet / IPv4 / UDP from 198.18.0.1 to 198.18.0.2 (the benchmarking
/// range, RFC 2544), UDP port 1024 (the program varies it per flow) to 9, UDP checksum 0.
enum FrameTemplate {
    static let baseSourcePort: UInt16 = 1024
    static let minimumSize = 60
    static let maximumSize = 1514

    /// `inner` encapsulated as vswift's LISP ports send it (outer IPv4 `from` → `to`, UDP 4341).
    static func lisp(inner: [UInt8], source: [UInt8], destination: [UInt8], from: String, to: String) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 256 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256 - 64
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        let parameters = LISP.EncapsulationParameters(
            ethernetDestination: macValue(destination), ethernetSource: macValue(source),
            source: IPAddress(from)!, destination: IPAddress(to)!)
        let result = LISP.encapsulate(&start, length: &length, headroom: 256 - 64, instanceID: 0,
                                      parameters: parameters, ipIdentification: 1)
        precondition(result == .done)
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }

    private static func macValue(_ mac: [UInt8]) -> UInt64 { mac.reduce(0) { $0 << 8 | UInt64($1) } }

    static func udp(size: Int, source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: size)
        f.replaceSubrange(0..<6, with: destination)
        f.replaceSubrange(6..<12, with: source)
        f[12] = 0x08; f[13] = 0x00
        let ipLength = size - 14
        f[14] = 0x45
        f[16] = UInt8(ipLength >> 8); f[17] = UInt8(ipLength & 0xff)
        f[20] = 0x40  // DF
        f[22] = 64    // TTL
        f[23] = 17    // UDP
        f.replaceSubrange(26..<30, with: [198, 18, 0, 1])
        f.replaceSubrange(30..<34, with: [198, 18, 0, 2])
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(f[i]) << 8 | UInt32(f[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        f[24] = UInt8(checksum >> 8); f[25] = UInt8(checksum & 0xff)
        let udpLength = size - 34
        f[34] = UInt8(baseSourcePort >> 8); f[35] = UInt8(baseSourcePort & 0xff)
        f[37] = 9
        f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xff)
        return f
    }
}
