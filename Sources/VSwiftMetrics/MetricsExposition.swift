import Prometheus
import VSwiftControl
import VSwiftProtocol

/// A metrics snapshot in Prometheus' text exposition format (version 0.0.4), written by
/// swift-prometheus. A new registry per scrape: the series are exactly the ports, workers and
/// flows of this moment (a deleted port's series end), and counters are set to the datapath's
/// totals rather than incremented.
///
/// Names follow Prometheus' conventions (a `vswift_` prefix, `_total` on counters, base units);
/// labels: `bridge` and `port` (with the port's `type`: "" for a device, `internal`, `lisp`,
/// `underlay`, whose bridge is ""), `worker`, and LISP's `reason` under the names `dump-ports`
/// prints.
public enum MetricsExposition {
    /// The Content-Type of the text format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ snapshot: MetricsSnapshot) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        // Whole names here (no unit suffix added), so they read as they are exposed.
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: UInt64) {
            registry.makeCounter(descriptor: descriptor(name, help), labels: labels).increment(by: Int64(clamping: value))
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int64) {
            registry.makeGauge(descriptor: descriptor(name, help), labels: labels).set(value)
        }

        gauge("vswift_build_info", "vswift's version (the value is always 1).", [("version", VSwiftVersion.current)], 1)

        for bridge in snapshot.bridges {
            let labels = [("bridge", bridge.name)]
            gauge("vswift_bridge_flows", "Flows in the bridge's table.", labels, Int64(bridge.flows))
            gauge("vswift_bridge_ports", "Ports of the bridge, its internal port included.", labels, Int64(bridge.ports))
        }

        for port in snapshot.ports {
            let labels = [("bridge", port.bridge), ("port", port.name), ("type", port.type)]
            let s = port.statistics
            counter("vswift_port_rx_packets_total", "Frames received by the port.", labels, s.rxPackets)
            counter("vswift_port_rx_bytes_total", "Bytes received by the port.", labels, s.rxBytes)
            counter("vswift_port_rx_dropped_total", "Received frames dropped (as dump-ports' rx drop).", labels, s.rxDropped)
            counter("vswift_port_rx_errors_total", "Receive errors.", labels, s.rxErrors)
            counter("vswift_port_tx_packets_total", "Frames sent by the port.", labels, s.txPackets)
            counter("vswift_port_tx_bytes_total", "Bytes sent by the port.", labels, s.txBytes)
            counter("vswift_port_tx_dropped_total", "Frames for the port that were dropped (as dump-ports' tx drop).", labels, s.txDropped)
            counter("vswift_port_tx_errors_total", "Transmit errors.", labels, s.txErrors)
            if let xsk = s.xsk {
                counter("vswift_port_xsk_rx_dropped_total", "AF_XDP: frames the kernel dropped for reasons other than a full ring.", labels, xsk.rxDropped)
                counter("vswift_port_xsk_rx_ring_full_total", "AF_XDP: frames dropped because the rx ring was full.", labels, xsk.rxRingFull)
                counter("vswift_port_xsk_rx_fill_ring_empty_total", "AF_XDP: times the kernel found the fill ring empty.", labels, xsk.rxFillRingEmptyDescs)
                counter("vswift_port_xsk_rx_invalid_descs_total", "AF_XDP: invalid rx descriptors.", labels, xsk.rxInvalidDescs)
                counter("vswift_port_xsk_tx_invalid_descs_total", "AF_XDP: invalid tx descriptors.", labels, xsk.txInvalidDescs)
                counter("vswift_port_xsk_tx_ring_empty_total", "AF_XDP: times the kernel found the tx ring empty when woken.", labels, xsk.txRingEmptyDescs)
            }
            if let lisp = s.tunnel {
                let portLabels = [("bridge", port.bridge), ("port", port.name)]
                counter("vswift_lisp_encapsulated_packets_total", "LISP: packets encapsulated by the port.", portLabels, lisp.encapsulated)
                counter("vswift_lisp_decapsulated_packets_total", "LISP: packets decapsulated by the port.", portLabels, lisp.decapsulated)
                for (reason, value) in TunnelStatisticsReport.dropReasons {
                    counter(
                        "vswift_lisp_dropped_packets_total", "LISP: packets the port dropped, by reason (as dump-ports names them).",
                        portLabels + [("reason", reason)], lisp[keyPath: value])
                }
                for (reason, value) in TunnelStatisticsReport.notDecapsulatedReasons {
                    counter(
                        "vswift_lisp_not_decapsulated_packets_total",
                        "LISP: packets to a local address not decapsulated but forwarded as they are, by reason.",
                        portLabels + [("reason", reason)], lisp[keyPath: value])
                }
                // dump-ports shows its lisp_mtu line only once a counter moved; the series are always
                // there (zero until then), so rate() has a start.
                let mtu = lisp.pathMTU ?? PathMTUStatisticsReport()
                counter("vswift_lisp_icmp_too_big_sent_total", "LISP path MTU: ICMP Fragmentation Needed / ICMPv6 Packet Too Big sent to inner sources.", portLabels, mtu.icmpSent)
                counter("vswift_lisp_icmp_too_big_rate_limited_total", "LISP path MTU: answers not sent, over the per-worker rate.", portLabels, mtu.icmpRateLimited)
                counter("vswift_lisp_inner_fragmented_packets_total", "LISP path MTU: inner IPv4 packets (DF clear) fragmented to fit.", portLabels, mtu.innerFragmented)
                counter("vswift_lisp_inner_fragments_total", "LISP path MTU: pieces of those sent on.", portLabels, mtu.innerFragments)
                counter("vswift_lisp_reassembled_packets_total", "LISP: outer datagrams reassembled from fragments.", portLabels, mtu.reassembled)
                for (reason, value) in PathMTUStatisticsReport.reassemblyDropReasons {
                    counter(
                        "vswift_lisp_reassembly_dropped_total", "LISP: outer fragments or datagrams dropped in reassembly, by reason (as dump-ports' lisp_mtu line).",
                        portLabels + [("reason", reason)], mtu[keyPath: value])
                }
            }
        }

        for worker in snapshot.workers {
            let labels = [("worker", String(worker.worker))]
            counter("vswift_worker_rx_packets_total", "Frames the worker received on all its ports.", labels, worker.rxPackets)
            counter("vswift_worker_tx_packets_total", "Frames the worker sent on all its ports.", labels, worker.txPackets)
            counter("vswift_worker_rounds_total", "Polling rounds of the worker.", labels, worker.rounds)
            let cycles = "Time-stamp-counter cycles of the worker by kind: busy and idle rounds (user space) and system calls (as dump-workers)."
            counter("vswift_worker_cycles_total", cycles, labels + [("kind", "busy")], worker.busyCycles)
            counter("vswift_worker_cycles_total", cycles, labels + [("kind", "idle")], worker.idleCycles)
            counter("vswift_worker_cycles_total", cycles, labels + [("kind", "system_call")], worker.systemCallCycles)
            counter("vswift_worker_cache_hits_total", "Flow keys the worker's exact-match cache answered.", labels, worker.cacheHits)
            counter("vswift_worker_cache_misses_total", "Flow keys the exact-match cache sent on to the classifier.", labels, worker.cacheMisses)
            if let cpu = worker.cpu {
                gauge("vswift_worker_cpu", "The CPU the worker is pinned to.", labels, Int64(cpu))
            }
        }

        for flow in snapshot.topFlows {
            let labels = [
                ("bridge", flow.bridge), ("priority", String(flow.priority)), ("cookie", "0x" + String(flow.cookie, radix: 16)),
                ("match", flow.match),
            ]
            counter("vswift_flow_packets_total", "Packets of the flows with most packets (the top N only).", labels, flow.packets)
            counter("vswift_flow_bytes_total", "Bytes of the flows with most packets (the top N only).", labels, flow.bytes)
        }
        if let lisp = snapshot.lispControl {
            for (message, count) in lisp.sent.sorted(by: { $0.key < $1.key }) {
                counter("vswift_lisp_control_sent_total", "LISP control messages sent, by message.", [("message", message)], count)
            }
            for (message, count) in lisp.received.sorted(by: { $0.key < $1.key }) {
                counter("vswift_lisp_control_received_total", "LISP control messages received and accepted, by message.", [("message", message)], count)
            }
            for (reason, count) in lisp.refused.sorted(by: { $0.key < $1.key }) {
                counter("vswift_lisp_control_refused_total", "LISP control messages refused, by reason.", [("reason", reason)], count)
            }
            gauge("vswift_lisp_map_cache_entries", "Entries in the LISP map-cache (static ones included).", [], Int64(lisp.mapCacheEntries))
        }
        return registry.emitToBuffer()
    }
}
