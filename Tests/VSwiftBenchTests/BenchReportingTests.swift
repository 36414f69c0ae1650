import CXDP
import Glibc
import Foundation
import Testing
@testable import vswift_bench

/// The bench's pure logic: report formatting, plot generation, OVS flow text, option parsing.
@Suite("Bench reporting")
struct BenchReportingTests {
    func summary(_ name: String, mpps: Double, ratio: Double? = nil, load: Double? = nil) -> Summary {
        var s = Summary(results: [RunResult(
            scenario: "p2p-64B", switchName: name, run: 1, windowSeconds: 1, packets: 1000, bytes: 64000, mpps: mpps,
            offeredMpps: 5, userNanosecondsPerPacket: 41.25, totalNanosecondsPerPacket: 1012.4, cpuUtilization: 1,
            userTicks: 10, systemTicks: 90, flowLoadSeconds: load, notes: [])])
        s.ratio = ratio
        return s
    }

    @Test func pipelineOnlyTakesAWholeNameAsThatScenarioAndAnyOtherTermAsASubstring() {
        func names(_ terms: [String]) -> [String] { Pipeline.scenarios(matching: terms).map(\.name) }
        #expect(names(["lisp-map-1"]) == ["lisp-map-1"])
        #expect(names(["lisp-map"]) == ["lisp-map-1", "lisp-map-10k", "lisp-map-100k"])
        #expect(names(["lisp-encap-1k", "lisp-map-100k"]) == ["lisp-encap-1k", "lisp-map-100k"])
        #expect(names(["seed"]) == ["seed"])
        #expect(names(["seed-"]) == ["seed-encap", "seed-decap"])
        #expect(names(["no-such-scenario"]).isEmpty)
    }

    @Test func markdownReportHasHeaderFactsTableAndNotes() {
        let invocation = InvocationInfo(commandLine: "vswift-bench forward --quick", date: "2026-11-25T08:00:00Z", commit: "abc123")
        let machine = MachineInfo(cpus: 2, model: "AMD EPYC", kernel: "6.18.44")
        let text = MarkdownReport.render(
            title: "vswift-bench forward", invocation: invocation, machine: machine, setup: ["CPUs: switch 1, generator 0"],
            summaries: [summary("vswift", mpps: 0.95, ratio: 0.97), summary("xsk_fwd", mpps: 0.98, ratio: 1)],
            notes: ["vswift run 1: a | pipe"])
        #expect(text.hasPrefix("# vswift-bench forward\n"))
        #expect(text.contains("- command: `vswift-bench forward --quick`"))
        #expect(text.contains("- date: 2026-11-25T08:00:00Z"))
        #expect(text.contains("- machine: AMD EPYC, 2 CPUs"))
        #expect(text.contains("- kernel: 6.18.44"))
        #expect(text.contains("- commit: abc123"))
        #expect(text.contains("| scenario | switch | Mpps (median) | Mpps range | offered Mpps | ratio | user ns/pkt | total ns/pkt | allocs/pkt |"))
        #expect(text.contains("| p2p-64B | vswift | 0.950 | 0.950–0.950 | 5.000 | 0.97 | 41.2 | 1012 | – |"))
        #expect(text.contains("## Notes\n\n- vswift run 1: a \\| pipe"))
        #expect(!text.contains("table load s"))
    }

    @Test func markdownTableShowsFlowLoadOnlyWhenLoaded() {
        let table = MarkdownReport.table([summary("vswift", mpps: 0.7, load: 1.5), summary("xsk_fwd", mpps: 0.9)])
        let lines = table.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasSuffix("| table load s |"))
        #expect(lines[2].hasSuffix("| 1.50 |"))
        #expect(lines[3].hasSuffix("| – |"))
    }

    @Test func tscColumnAppearsWhenMeasured() {
        var vswift = summary("vswift", mpps: 0.9)
        vswift.tscUserCyclesPerPacket = 57.44
        vswift.tscGigahertz = 2.6
        let markdown = MarkdownReport.table([vswift, summary("ovs", mpps: 0.8)]).split(separator: "\n")
        #expect(markdown[0].hasSuffix("| user TSC cycles/pkt |"))
        #expect(markdown[2].hasSuffix("| 57.4 |"))
        #expect(markdown[3].hasSuffix("| – |"))
        let text = Table.render(summaries: [vswift], showRange: false).split(separator: "\n")
        #expect(text[0].hasSuffix("user TSC cyc/pkt"))
        #expect(text[1].hasSuffix("57.4"))
        #expect(!Table.render(summaries: [summary("vswift", mpps: 0.9)], showRange: false).contains("TSC"))
        vswift.userCoreCyclesPerPacket = 80.6
        #expect(MarkdownReport.table([vswift]).split(separator: "\n")[0].hasSuffix("| user TSC cycles/pkt | ≈ user core cycles/pkt |"))
        #expect(MarkdownReport.table([vswift]).split(separator: "\n")[2].hasSuffix("| 57.4 | 81 |"))
        #expect(Table.render(summaries: [vswift], showRange: false).split(separator: "\n")[1].hasSuffix("57.4              81"))
        #expect(MeasurementContext.number(after: "tsc cycles busy ", in: "xsk_fwd: tsc cycles busy 1234 idle 5") == 1234)
        #expect(MeasurementContext.number(after: "tsc cycles busy ", in: "xsk_fwd: s0->s1 5 packets") == nil)
    }

    /// A run that forwards within 10 % of what the generator offered may be the generator's rate,
    /// not the switch's: it is marked in the table, the Markdown and the JSON, and no ratio is
    /// computed against it or for it.
    @Test func generatorBoundRowsAreMarkedAndNotCompared() throws {
        #expect(RunResult.isGeneratorBound(mpps: 0.95, offeredMpps: 1.0))
        #expect(RunResult.isGeneratorBound(mpps: 0.90, offeredMpps: 1.0))
        #expect(!RunResult.isGeneratorBound(mpps: 0.89, offeredMpps: 1.0))
        #expect(!RunResult.isGeneratorBound(mpps: 0.5, offeredMpps: 0))
        func summary(_ name: String, mpps: Double, offered: Double) -> Summary {
            var result = RunResult(
                scenario: "p2p-64B", switchName: name, run: 1, windowSeconds: 1, packets: 1000, bytes: 64000, mpps: mpps,
                offeredMpps: offered, generator: "loop", userNanosecondsPerPacket: 20, totalNanosecondsPerPacket: 950,
                cpuUtilization: 1, userTicks: 10, systemTicks: 90, flowLoadSeconds: nil, notes: [])
            result.generatorBound = RunResult.isGeneratorBound(mpps: mpps, offeredMpps: offered)
            return Summary(results: [result])
        }
        var open = [summary("vswift", mpps: 0.6, offered: 1.8), summary("xsk_fwd", mpps: 0.65, offered: 1.8)]
        Summary.compare(&open, against: "xsk_fwd")
        #expect(abs((open[0].ratio ?? 0) - 0.6 / 0.65) < 1e-9 && open[1].ratio == 1 && open[0].ratioWithheld == nil)
        #expect(!Table.render(summaries: open, showRange: false).contains("gen-bound"))

        // A bound row gets no ratio; the reference keeps its 1.
        var bound = [summary("vswift", mpps: 0.99, offered: 1.0), summary("xsk_fwd", mpps: 0.65, offered: 1.8)]
        Summary.compare(&bound, against: "xsk_fwd")
        #expect(bound[0].ratio == nil && bound[0].ratioWithheld == "generator-bound" && bound[1].ratio == 1)
        #expect(bound[0].generatorBound && !bound[1].generatorBound && bound[0].generator == "loop")
        let text = Table.render(summaries: bound, showRange: false).split(separator: "\n")
        #expect(text[1].contains("1.000 gen-bound") && text[1].contains("n/c"), "\(text)")
        #expect(text[2].contains("1.00") && !text[2].contains("gen-bound"), "\(text)")
        // A bound reference: nothing is compared with it.
        var boundReference = [summary("vswift", mpps: 0.6, offered: 1.8), summary("xsk_fwd", mpps: 0.98, offered: 1.0)]
        Summary.compare(&boundReference, against: "xsk_fwd")
        #expect(boundReference.allSatisfy { $0.ratio == nil && $0.ratioWithheld == "generator-bound" })
        let markdown = MarkdownReport.table(bound).split(separator: "\n")
        #expect(markdown[2].contains("| 1.000 (generator-bound) | – (generator-bound) |"), "\(markdown)")
        let json = String(decoding: try JSONEncoder().encode(bound[0]), as: UTF8.self)
        #expect(json.contains("\"generatorBound\":true") && json.contains("\"generator\":\"loop\""), "\(json)")
        #expect(!json.contains("\"ratio\":"), "\(json)")
    }

    /// Host noise only adds cycles: with several runs the tables also show the lowest run's.
    @Test func lowestRunCyclesAppearWithSeveralRuns() {
        let runs = [(80.2, 112.3), (39.1, 54.7), (41.0, 57.4)].enumerated().map { i, cycles in
            var result = RunResult(
                scenario: "p2p-64B", switchName: "vswift", run: i + 1, windowSeconds: 1, packets: 1000, bytes: 64000, mpps: 1,
                offeredMpps: 5, userNanosecondsPerPacket: 20, totalNanosecondsPerPacket: 950, cpuUtilization: 1,
                userTicks: 10, systemTicks: 90, flowLoadSeconds: nil, notes: [])
            result.tscUserCyclesPerPacket = cycles.0
            result.userCoreCyclesPerPacket = cycles.1
            return result
        }
        let several = Summary(results: runs)
        #expect(several.tscUserCyclesPerPacket == 41.0 && several.tscUserCyclesPerPacketMin == 39.1)
        #expect(several.userCoreCyclesPerPacketMin == 54.7)
        let markdown = MarkdownReport.table([several]).split(separator: "\n")
        #expect(markdown[0].hasSuffix("| user TSC cycles/pkt | ≈ user core cycles/pkt | lowest run: user TSC cycles/pkt | lowest run: ≈ user core cycles/pkt |"))
        #expect(markdown[2].hasSuffix("| 41.0 | 57 | 39.1 | 55 |"))
        let text = Table.render(summaries: [several], showRange: true).split(separator: "\n")
        #expect(text[0].hasSuffix("user TSC cyc/pkt  ≈ core cyc/pkt  min TSC  min ≈ core"))
        let one = Summary(results: [runs[0]])
        #expect(!Table.render(summaries: [one], showRange: false).contains("min"))
        #expect(!MarkdownReport.table([one]).contains("lowest run"))
    }

    @Test func coreClockIsMeasured() throws {
        // A chain of dependent additions against the TSC: both rates plausible for any x86 machine.
        let clock = try #require(CoreClock.measure(cpu: 0))
        #expect(clock.tscGigahertz > 0.5 && clock.tscGigahertz < 10)
        #expect(clock.coreGigahertz > 0.3 && clock.coreGigahertz < 10)
        #expect(abs(clock.ratio - clock.coreGigahertz / clock.tscGigahertz) < 1e-9)
    }

    @Test func cycleColumnsAppearOnlyWhereCountersWorked() {
        var counted = summary("vswift", mpps: 0.9)
        counted.userCyclesPerPacket = 121.4
        counted.cyclesPerPacket = 3010.6
        let markdown = MarkdownReport.table([counted, summary("xsk_fwd", mpps: 0.95)]).split(separator: "\n")
        #expect(markdown[0].hasSuffix("| user cycles/pkt | cycles/pkt |"))
        #expect(markdown[2].hasSuffix("| 121 | 3011 |"))
        #expect(markdown[3].hasSuffix("| – | – |"))
        let text = Table.render(summaries: [counted], showRange: false).split(separator: "\n")
        #expect(text[0].hasSuffix("user cyc/pkt  cyc/pkt"))
        #expect(text[1].hasSuffix("121           3011"))
        #expect(!MarkdownReport.table([summary("vswift", mpps: 0.9)]).contains("cycles"))
        #expect(!Table.render(summaries: [summary("vswift", mpps: 0.9)], showRange: false).contains("cyc"))
    }

    /// This VM has no hardware counters: opening one must fail cleanly and say why; where the
    /// machine has them, the counters count the thread's own work.
    @Test func cycleCountersCountOrSayWhyNot() {
        switch CycleCounters.open(threads: [(pid: getpid(), tid: vs_gettid())]) {
        case .success(var counters):
            let start = counters.read()
            var x: UInt64 = 1
            for i in 0..<1_000_000 { x = x &* 6364136223846793005 &+ UInt64(i) }
            let end = counters.read()
            counters.close()
            #expect(x != 0)
            #expect(end.all > start.all && end.user > start.user && end.all >= end.user)
        case .failure(let why):
            #expect(why.description.hasPrefix("cycles per packet: not measured"))
        }
    }

    @Test func shellQuotingKeepsPlainArgumentsAndQuotesTheRest() {
        #expect(shellQuoted("--rules=1000") == "--rules=1000")
        #expect(shellQuoted("/tmp/a b.json") == "'/tmp/a b.json'")
        #expect(shellQuoted("it's") == "'it'\\''s'")
        #expect(shellQuoted("") == "''")
    }

    @Test func plotGroupsPointsBySwitchSortedByRules() {
        let plot = PlotScript(points: [
            (switchName: "vswift", rules: 1000, mpps: 0.9), (switchName: "xsk_fwd", rules: 1000, mpps: 1.0),
            (switchName: "vswift", rules: 1, mpps: 0.95), (switchName: "xsk_fwd", rules: 1, mpps: 1.01),
        ])
        #expect(plot.series.map { $0.name } == ["vswift", "xsk_fwd"])
        #expect(plot.series[0].points == [.init(rules: 1, mpps: 0.95), .init(rules: 1000, mpps: 0.9)])
        #expect(plot.data == "# vswift\n1 0.9500\n1000 0.9000\n\n\n# xsk_fwd\n1 1.0100\n1000 1.0000\n")
    }

    @Test func plotScriptDrawsEverySeriesOnALogAxis() {
        let plot = PlotScript(points: [(switchName: "vswift", rules: 1, mpps: 1), (switchName: "ovs-afxdp", rules: 1, mpps: 0.9)])
        let script = plot.script(dataPath: "/tmp/it's.dat", pngPath: "/tmp/p.png", title: "t")
        #expect(script.contains("set terminal png size 900,560 noenhanced"))  // names like xsk_fwd stay literal
        #expect(script.contains("set output '/tmp/p.png'"))
        #expect(script.contains("set logscale x 10"))
        #expect(script.contains("set xtics ('1' 1)"))
        #expect(script.contains("'/tmp/it''s.dat' index 0 using 1:2 with linespoints title 'vswift'"))
        #expect(script.contains("'/tmp/it''s.dat' index 1 using 1:2 with linespoints title 'ovs-afxdp'"))
    }

    @Test func plotTicksNameEachMeasuredSize() {
        let plot = PlotScript(points: [1, 1000, 100_000, 1_000_000, 1500].map { (switchName: "vswift", rules: $0, mpps: 1) })
        #expect(plot.ticks == "'1' 1, '1k' 1000, '1500' 1500, '100k' 100000, '1M' 1000000")
    }

    @Test func ovsFlowTableMirrorsVSwiftsRules() {
        let lines = OVSSwitch.flowTable(3).split(separator: "\n")
        #expect(lines == [
            "priority=5,in_port=2,actions=output:1",
            "priority=10,in_port=1,udp,tp_src=1024,actions=output:2",
            "priority=10,in_port=1,udp,tp_src=1025,nw_dst=198.18.0.2,actions=output:2",
            "priority=10,in_port=1,udp,tp_src=1026,actions=output:2",
        ])
        // Past 64,512 rules (source ports 1024...65535) the source ports repeat and tp_dst keeps the
        // matches distinct; no port exceeds 16 bits (ovs-ofctl rejects the file otherwise).
        let big = OVSSwitch.flowTable(64_513).split(separator: "\n")
        #expect(big.count == 64_514)
        #expect(big[big.count - 2] == "priority=10,in_port=1,udp,tp_src=65535,nw_dst=198.18.0.2,actions=output:2")
        #expect(big.last == "priority=10,in_port=1,udp,tp_src=1024,tp_dst=1,actions=output:2")
        // Rule for rule the same matches as vswift's table.
        let vswift = VSwiftSwitch.flowTable(64_513)
        #expect(vswift.count == big.count)
        #expect(vswift.last?.priority == 10)
    }

    @Test func vxlanTemplateWrapsTheInnerFrame() {
        let inner = FrameTemplate.udp(size: 64, source: [2, 0, 0, 0, 0, 1], destination: [2, 0, 0, 0, 0, 2])
        let frame = FrameTemplate.vxlan(inner: inner, source: [2, 0, 0, 0, 0, 3], destination: [2, 0, 0, 0, 0, 4],
                                        from: [198, 19, 1, 2], to: [198, 19, 1, 1])
        #expect(frame.count == 64 + 50)
        #expect(Array(frame[0..<6]) == [2, 0, 0, 0, 0, 4])
        #expect(Array(frame[26..<34]) == [198, 19, 1, 2, 198, 19, 1, 1])
        #expect(Int(frame[16]) << 8 | Int(frame[17]) == 100)              // IPv4 total length
        #expect(FrameTemplate.ipv4HeaderChecksum(frame[14..<34]) == 0)     // a valid header sums to 0xffff
        #expect(Int(frame[36]) << 8 | Int(frame[37]) == 4789)
        #expect(Int(frame[38]) << 8 | Int(frame[39]) == 80)               // UDP length
        #expect(Array(frame[42..<50]) == [0x08, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(frame[50...]) == inner)
    }

    @Test func ovsUpcallsAreSummedOverPMDs() {
        let text = """
            pmd thread numa_id 0 core_id 1:
              packets received: 1000
              megaflow hits: 990
              miss with success upcall: 8
              miss with failed upcall: 2
            pmd thread numa_id 0 core_id 0:
              miss with success upcall: 5
              miss with failed upcall: 0
            """
        #expect(OVSUpcalls(pmdStatistics: text) == OVSUpcalls(succeeded: 13, failed: 2))
        #expect(OVSUpcalls(pmdStatistics: "no pmd threads") == nil)
    }

    @Test func sweepPointsParseAndRejectNonsense() throws {
        #expect(try Sweep.parsePoints("1,1000,100000,1000000") == [1, 1000, 100_000, 1_000_000])
        #expect(try Sweep.parsePoints(" 5 ") == [5])
        for bad in ["", "1,,2", "0", "x", "3000000", "-1"] {
            #expect(throws: (any Error).self) { try Sweep.parsePoints(bad) }
        }
    }

    @Test func markdownGoesNextToTheJSONUnlessNamed() throws {
        // Parsing validates, and validation wants two CPUs (the bench's minimum).
        guard ForwardOptions.onlineCPUs >= 2 else { return }
        var options = try ForwardOptions.parse(["--json", "/tmp/r.json"])
        #expect(options.markdownPath == "/tmp/r.md")
        options = try ForwardOptions.parse(["--json", "/tmp/r", "--markdown", "/tmp/x.md"])
        #expect(options.markdownPath == "/tmp/x.md")
        options = try ForwardOptions.parse([])
        #expect(options.markdownPath == nil)
    }

    @Test func unwritableOrCollidingOutputsAreRejectedUpFront() {
        #expect(throws: (any Error).self) { try ForwardOptions.parse(["--json", "/nonexistent-dir/r.json"]) }
        #expect(throws: (any Error).self) { try ForwardOptions.parse(["--json", "/tmp/r.json", "--markdown", "/tmp/r.json"]) }
        #expect(throws: (any Error).self) { try Sweep.parse(["--plot", "/tmp/flows.jpg"]) }
        #expect(throws: (any Error).self) { try Sweep.parse(["--points", "1,x"]) }
    }

    @Test func theMedianAveragesTheMiddlePairAndQuantilesTakeTheNearestRank() {
        #expect(Statistics.median([]) == 0)
        #expect(Statistics.median([3, 1, 2]) == 2)
        #expect(Statistics.median([4, 1, 3, 2]) == 2.5)
        let ten = (1...10).map(Double.init)
        #expect(Statistics.quantile(sorted: ten, 0) == 1)
        #expect(Statistics.quantile(sorted: ten, 0.25) == 3)
        #expect(Statistics.quantile(sorted: ten, 0.9) == 9)
        #expect(Statistics.quantile(sorted: ten, 1) == 10)
        #expect(Statistics.quantile(sorted: [7], 0.75) == 7)
    }
}
