import ArgumentParser
import Foundation
import VSwiftProtocol

/// `vswiftctl trace`: what the datapath would do with a frame, and why (cf. ovs-appctl
/// ofproto/trace). vswiftd runs the frame through the workers' own pipeline code and sends nothing.
struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what the datapath would do with a frame, and why. Sends nothing.",
        usage: """
            vswiftctl trace <bridge> <flow>
            vswiftctl trace <bridge> in_port=<port> --hex <frame>
            vswiftctl trace <bridge> in_port=<port> --pcap <file> [--all]
            """,
        discussion: """
            The flow is in ovs-ofctl match syntax and must give in_port, e.g. \
            in_port=1,dl_src=52:54:00:01:00:01,dl_dst=52:54:00:02:00:02,icmp,nw_src=10.1.1.1,nw_dst=10.1.1.2; \
            fields it leaves out take defaults (zero addresses, TTL 64), as ofproto/trace does. With --hex or \
            --pcap the frame is given whole and the flow gives only in_port (and tun_id, tun_src, tun_dst). \
            The report shows, stage by stage (LISP decapsulation and re-entry after encapsulation are stages \
            of their own): the flow key, the rule that matched (or the miss), NORMAL's decision, the frames \
            each port would send with the fields changed, LISP outer headers, and drops with their reason.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "The flow (ovs-ofctl match syntax, with in_port).") var flow: String
    @Option(help: "A whole Ethernet frame in hex.") var hex: String?
    @Option(help: "Trace the first Ethernet frame of this pcap or pcapng file.") var pcap: String?
    @Flag(help: "With --pcap: trace every frame of the file, not just the first.") var all = false
    @Flag(help: "Print the report as JSON (as --format json does).") var json = false

    func validate() throws {
        if hex != nil && pcap != nil { throw ValidationError("give --hex or --pcap, not both") }
        if all && pcap == nil { throw ValidationError("--all goes with --pcap") }
    }

    func run() throws {
        var frames: [String?] = [hex]
        if let pcap {
            let data: [UInt8]
            do {
                data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: pcap)))
            } catch {
                throw CommandError(description: "cannot read \(pcap): \((error as NSError).localizedDescription)")
            }
            let found: [[UInt8]]
            do {
                found = try PcapFrames.frames(data, limit: all ? .max : 1)
            } catch {
                throw CommandError(description: "\(pcap): \(error.description)")
            }
            guard !found.isEmpty else { throw CommandError(description: "\(pcap) holds no frame") }
            frames = found.map { bytes in bytes.map { String(format: "%02x", $0) }.joined() }
        }
        for (i, frame) in frames.enumerated() {
            let params = try JSONValue(encoding: TraceParams(bridge: bridge, flow: flow, frame: frame))
            let result = try global.fetch(.trace, params)
            if json || global.format == .json {
                print(formatJSON(result), terminator: "")
            } else {
                if frames.count > 1 { print("\(i == 0 ? "" : "\n")=== frame \(i + 1) of \(frames.count) ===") }
                print(try result.decode(TraceReport.self).text, terminator: "")
            }
        }
    }
}
