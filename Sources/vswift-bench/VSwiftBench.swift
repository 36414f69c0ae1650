import ArgumentParser
import Foundation
import Glibc
import VSwiftDatapath

@main
enum Entry {
    static func main() {
        // A parent may have handed us a blocked signal mask (test runners do); the bench stops its
        // generator with SIGUSR1 and cleans up on SIGINT/SIGTERM, so those must get through.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        // Before anything else: may re-execute the bench with the malloc interposer preloaded.
        AllocationCounter.prepareProcess()
        VSwiftBench.main()
    }
}

struct VSwiftBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vswift-bench",
        abstract: "vswift's benchmarks: forwarding on veth (default), the in-memory pipeline, the classifier.",
        subcommands: [Forward.self, Sweep.self, Pipeline.self, ClassifierBench.self, MapCacheBench.self, XDPCacheBench.self, MegaflowBench.self,
                      LISPFirstPacket.self],
        defaultSubcommand: Forward.self)
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Port-to-port forwarding rate on a veth topology: vswift, a minimal C AF_XDP forwarder and (if installed) Open vSwitch with AF_XDP ports, side by side.",
        discussion: """
            Builds three network namespaces (generator, switch, sink) joined by veth pairs g0-s0 and s1-k0,
            injects UDP frames into g0 with an XDP program run through BPF_PROG_RUN (live frames), lets the
            switch forward s0 -> s1, and counts what reaches k0 with an XDP program. Needs root and two CPUs.
            --tunnel roundtrip adds a second switch namespace (s0 -> switch A -> u0 -> u1 -> switch B -> s1).
            See bench/README.md for what each number means.
            """)

    @OptionGroup var options: ForwardOptions

    @Option(help: "Distinct flows (UDP source ports) the generator cycles through.")
    var flows: Int = 1

    @Option(help: "vswift (and OVS) run an OpenFlow table of this many rules (one per generator flow, two subtables) instead of NORMAL; 0 = NORMAL.")
    var rules: Int = 0

    @Option(help: "LISP: vswift encapsulates what it forwards (s1 is an underlay device; OVS's row is VXLAN), decapsulates what it receives (the generator sends LISP to s0, an underlay device; OVS's row is VXLAN), or roundtrip: switch A encapsulates, switch B decapsulates (both vswift, on the switch CPU; OVS's row: two ovs-vswitchd in VXLAN). No xsk_fwd row.")
    var tunnel: TunnelScenario = .none

    @Option(name: .customLong("map-prefixes"), parsing: .upToNextOption,
            help: "With --tunnel encap: also vswift encapsulating through the map-cache (remote_ip=map) with this many static entries, one row (vswift-map-N) per count, e.g. --map-prefixes 1 10000 100000.")
    var mapPrefixes: [Int] = []

    func validate() throws {
        guard (1...60_000).contains(flows) else { throw ValidationError("--flows must be 1...60000") }
        guard (0...2_000_000).contains(rules) else { throw ValidationError("--rules must be 0...2000000") }
        guard mapPrefixes.isEmpty || tunnel == .encap else { throw ValidationError("--map-prefixes needs --tunnel encap") }
        guard mapPrefixes.allSatisfy({ (1...1_000_000).contains($0) }) else { throw ValidationError("--map-prefixes must be 1...1000000") }
    }

    mutating func run() throws {
        try requireRoot()
        let run = ForwardRun(options: options, flows: flows, rules: rules, tunnel: tunnel, mapPrefixes: mapPrefixes)
        try runInterruptibly {
            let outcome = try run.measure()
            try BenchOutput(options: options).emit([outcome])
        }
    }
}

func requireRoot() throws {
    guard geteuid() == 0 else {
        throw BenchError.failed("vswift-bench needs root (network namespaces, XDP, AF_XDP)")
    }
}

/// Runs `body`; a SIGINT/SIGTERM (after the topology has been torn down) ends the bench with 130.
func runInterruptibly(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch BenchError.interrupted {
        FileHandle.standardError.write(Data("vswift-bench: interrupted; topology removed\n".utf8))
        throw ExitCode(130)
    }
}

enum TunnelScenario: String, ExpressibleByArgument, CaseIterable {
    case none, encap, decap, roundtrip
}

/// Progress and diagnostics go to stderr; the table to stdout.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
