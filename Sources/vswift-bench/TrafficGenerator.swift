import ArgumentParser
import CXDP
import Glibc

/// A source of frames into g0 (and so into s0's XDP receive path), whichever way it makes them.
/// Every backend runs its work on the generator CPU, counts the frames it produced in its BPF
/// program (the offered rate), and varies the UDP source port over `flows` values.
protocol TrafficGenerator: AnyObject {
    var backend: GeneratorBackend { get }
    /// g0's MAC, the frames' source.
    var sourceMAC: [UInt8] { get }
    /// Starts offering frames (again, after `pause`).
    func start()
    /// Stops offering frames; returns once no more are being produced.
    func pause()
    /// Ends the generator and releases what it holds; safe to call twice.
    func stop()
    /// Frames produced so far (all CPUs).
    var framesGenerated: UInt64 { get }
    /// Why generation stopped, if it failed.
    var failure: String? { get }
    /// Anything a reader of the results should know about this generator's run (nil: nothing).
    var remark: String? { get }
}

/// How the bench makes traffic. `auto` probes in `probeOrder` and takes the first that works.
enum GeneratorBackend: String, ExpressibleByArgument, CaseIterable, Codable {
    case auto
    /// BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (LiveFrameGenerator): the cheapest per frame,
    /// refused by some kernels (EPERM, even for root).
    case live
    /// Frames circulating through an XDP program on a veth pair of the generator's own, cloned
    /// into g0 on every pass (LoopGenerator): needs only native XDP on veth and devmap broadcast.
    case loop

    static let probeOrder: [GeneratorBackend] = [.live, .loop]

    /// One line for the report's setup section.
    var explanation: String {
        switch self {
        case .auto: return "probed"
        case .live: return "live: BPF_PROG_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES) on the generator CPU"
        case .loop: return "loop: frames circulating through an XDP program on a veth pair in the generator namespace, cloned into g0 on every pass (devmap broadcast), on the generator CPU"
        }
    }
}

/// A backend that cannot run on this machine (the kernel refuses what it needs).
struct GeneratorUnavailable: Error, CustomStringConvertible {
    let backend: GeneratorBackend
    let reason: String
    var description: String { "\(backend.rawValue): \(reason)" }
}

/// What every backend needs to know to offer frames.
struct GeneratorSetup {
    var namespace: String
    var device: String
    var cpu: Int
    var objectPath: String
    /// Length of the frames (of `template` when one is given).
    var frameSize: Int
    var flows: Int
    var destinationMAC: [UInt8]
    /// A fixed frame to send (LISP or VXLAN around the UDP frame); nil: the plain UDP frame.
    /// It must be IPv4/UDP with a 20-byte IP header: the programs write its UDP source port.
    var template: [UInt8]?

    func frame(sourceMAC: [UInt8]) -> [UInt8] {
        template ?? FrameTemplate.udp(size: frameSize, source: sourceMAC, destination: destinationMAC)
    }
}

enum TrafficGenerators {
    /// The chosen backend, or with `auto` the first of `probeOrder` that starts; `notes` say why
    /// earlier ones were passed over. Throws when none works (under CI=true that fails the
    /// smoke tests, as it must: the bench cannot measure anything).
    static func make(_ choice: GeneratorBackend, _ setup: GeneratorSetup) throws -> (generator: TrafficGenerator, notes: [String]) {
        let candidates = choice == .auto ? GeneratorBackend.probeOrder : [choice]
        var passedOver: [GeneratorUnavailable] = []
        let refused = refusedForTesting
        for backend in candidates {
            if refused.contains(backend) {
                let unavailable = GeneratorUnavailable(backend: backend, reason: "refused by \(refuseVariable) (testing the probe)")
                log("vswift-bench: generator \(unavailable)")
                passedOver.append(unavailable)
                continue
            }
            do {
                let generator: TrafficGenerator = switch backend {
                case .live: try LiveFrameGenerator(setup)
                case .loop: try LoopGenerator(setup)
                case .auto: preconditionFailure("auto is not a backend")
                }
                let notes = passedOver.map { "generator \($0.backend.rawValue) unavailable (\($0.reason)); used \(backend.rawValue)" }
                return (generator, notes)
            } catch let unavailable as GeneratorUnavailable {
                log("vswift-bench: generator \(unavailable)")
                passedOver.append(unavailable)
            }
        }
        if choice != .auto {
            throw BenchError.failed("generator \(passedOver.map(\.description).joined()) (--generator auto takes the first backend that works)")
        }
        throw BenchError.failed("no traffic generator works on this machine: " + passedOver.map(\.description).joined(separator: "; "))
    }
}

extension TrafficGenerators {
    /// Backends to treat as unavailable, comma-separated (`VSWIFT_BENCH_REFUSE=live`): how the
    /// tests take the fallback path on a kernel that allows live frames.
    static let refuseVariable = "VSWIFT_BENCH_REFUSE"

    static var refusedForTesting: Set<GeneratorBackend> {
        guard let value = getenv(refuseVariable) else { return [] }
        return Set(String(cString: value).split(separator: ",").compactMap { GeneratorBackend(rawValue: String($0)) })
    }
}

/// vswift_trafficgen.bpf.o loaded for one generator: its programs, its configuration and its
/// frame counters (both programs share them).
final class GeneratorProgram {
    let object: LoadedBPFObject
    private let configFD: Int32
    private let statsFD: Int32
    private let headerFD: Int32
    private let statsBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: possibleCPUs)

    /// VSB_GEN_HEADER_MAX: the most of the template the live program restores into every frame.
    static let headerMaximum = 128

    init(path: String) throws {
        object = try LoadedBPFObject(path: path)
        configFD = try object.mapFD("vsb_gen_config")
        statsFD = try object.mapFD("vsb_gen_stats")
        headerFD = try object.mapFD("vsb_gen_header")
    }

    /// The template's head that vswift_trafficgen copies back into every live frame (live mode
    /// recycles pages with whatever the receiver wrote into them; see the program's comment):
    /// struct vsb_gen_header { u32 length; u32 reserved; u8 bytes[128]; }, length a multiple of 8.
    func restoreHeader(from template: [UInt8]) throws {
        let length = min(template.count, Self.headerMaximum) & ~7
        var value = [UInt8](repeating: 0, count: 8 + Self.headerMaximum)
        for i in 0..<4 { value[i] = UInt8(truncatingIfNeeded: UInt32(length) >> (8 * UInt32(i))) }
        value.replaceSubrange(8..<(8 + length), with: template[0..<length])
        var zero: UInt32 = 0
        guard bpf_map_update_elem(headerFD, &zero, &value, 0) == 0 else {
            throw BenchError.failed("configure the generator's header: \(errnoText())")
        }
    }

    /// struct vsb_gen_config { u32 flows; u32 reserved[2]; u16 base_port; u16 running; }
    func configure(flows: Int, running: Bool = false) throws {
        var config = [UInt8](repeating: 0, count: 16)
        for i in 0..<4 { config[i] = UInt8(truncatingIfNeeded: UInt32(flows) >> (8 * UInt32(i))) }
        config[12] = UInt8(FrameTemplate.baseSourcePort & 0xff)
        config[13] = UInt8(FrameTemplate.baseSourcePort >> 8)
        config[14] = running ? 1 : 0
        var zero: UInt32 = 0
        guard bpf_map_update_elem(configFD, &zero, &config, 0) == 0 else {
            throw BenchError.failed("configure the generator: \(errnoText())")
        }
    }

    /// Frames the programs have produced (all CPUs).
    var frames: UInt64 { sumPerCPU(mapFD: statsFD, key: 0, fields: 1, buffer: statsBuffer)[0] }

    /// Frames the programs found not to be their template and dropped (all CPUs).
    var badFrames: UInt64 { sumPerCPU(mapFD: statsFD, key: 1, fields: 1, buffer: statsBuffer)[0] }

    deinit { statsBuffer.deallocate() }
}
