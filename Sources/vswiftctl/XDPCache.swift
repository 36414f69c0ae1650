import ArgumentParser
import VSwiftProtocol

/// `vswiftctl dump-xdp-cache [BRIDGE] [--json]`: the XDP flow cache's entries (as `ovs-appctl
/// dpctl/dump-flows` prints datapath flows), statistics and path counts.
struct DumpXDPCache: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-xdp-cache",
        abstract: "Print the XDP flow cache: its entries (as ovs-appctl dpctl/dump-flows), statistics and path counts.",
        discussion: "Every bridge's entries, or BRIDGE's. With the cache off (vswiftd --xdp-cache off), says so.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only this bridge's entries and ports.") var bridge: String?
    @Flag(help: "The report as JSON (as --format json).") var json = false

    func run() throws {
        var options = global
        if json { options.format = .json }
        let params = try JSONValue(encoding: DumpXDPCacheParams(bridge: bridge))
        try options.report(.dumpXDPCache, params, as: XDPCacheReport.self, text: formatDumpXDPCache)
    }
}

extension DumpWorkers {
    /// The workers (the AF_XDP path), then the packets the XDP flow cache kept from them.
    func printWithXDPTotals() throws {
        guard global.format == .text else {
            return try global.report(.dumpWorkers, nil, as: [WorkerReport].self, text: formatDumpWorkers)
        }
        let workers = try global.fetch(.dumpWorkers, nil).decode([WorkerReport].self)
        let xdp = try global.fetch(.dumpXDPCache, JSONValue(encoding: DumpXDPCacheParams(flows: false))).decode(XDPCacheReport.self)
        print(formatDumpWorkers(workers) + formatXDPWorkerTotals(xdp), terminator: "")
    }
}
