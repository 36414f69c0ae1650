import Testing
import VSwiftPacket
import VSwiftClassifier
import VSwiftFlowSyntax

/// Character offset of the first occurrence of `token` in `text` (tokens in the tables are unique).
private func offset(of token: String, in text: String) -> Int {
    let t = Array(text), k = Array(token)
    guard k.count <= t.count else { return -1 }
    for i in 0...(t.count - k.count) where Array(t[i ..< i + k.count]) == k { return i }
    return -1
}

private let ports: [String: UInt32] = ["vnet0": 1, "lisp0": 2, "vnét0": 7]
private var parser: FlowParser { FlowParser(portNumber: { ports[$0] }) }

private func line(_ r: FlowRule) -> String {
    FlowFormatter.match(r.match, priority: r.priority) + " actions=" + FlowFormatter.actions(r.actions)
}

@Suite("ovs-ofctl flow syntax")
struct FlowSyntaxTests {
    // MARK: The seed scenario

    @Test func seedFlowsParseAndPrintAsOVSDumpFlows() throws {
        let cases: [(String, String)] = [
            ("priority=0,action=NORMAL", "priority=0 actions=NORMAL"),
            ("priority=2,in_port=1,dl_type=0x0806,action=NORMAL", "priority=2,arp,in_port=1 actions=NORMAL"),
            ("priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
             "priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1"),
            ("priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
             "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:2"),
        ]
        for (input, dumped) in cases {
            let rule = try parser.parseFlow(input)
            #expect(line(rule) == dumped, "\(input)")
            #expect(FlowFormatter.flow(rule) == dumped)
            #expect(try parser.parseFlow(dumped) == rule)
        }
    }

    @Test func seedFlowValues() throws {
        let r = try parser.parseFlow("priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2")
        #expect(r.priority == 1)
        #expect(r.match.value(.inPort) == 1 && r.match.isExact(.inPort))
        #expect(r.match.value(.dlType) == 0x0800 && r.match.isExact(.dlType))
        #expect(r.match.value(.vlanTCI) == 0 && r.match.isExact(.vlanTCI))
        #expect(r.match.value(.nwSrc) == 0x0a01_0100 && r.match.mask(.nwSrc) == 0xffff_ff00)
        #expect(r.actions == [.output(2)])
        #expect(r.cookie == 0 && r.idleTimeout == 0 && r.hardTimeout == 0)

        let r3 = try parser.parseFlow("priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1")
        #expect(r3.actions == [.modDlDst(0x5254_00b8_2775), .output(1)])
        #expect(r3.match.value(.dlDst) == 0x0200_0000_0000 && r3.match.isExact(.dlDst))
    }

    @Test func dumpFlowsOutputFeedsBack() throws {
        let dumped = " cookie=0x0, duration=1615.828s, table=0, n_packets=195, n_bytes=19110, idle_age=1378, "
            + "priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1"
        #expect(try parser.parseFlow(dumped)
            == parser.parseFlow("priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1"))
    }

    // MARK: Round trips

    /// Input → canonical form (FlowFormatter.flow); the canonical form must parse back to the same rule.
    static let flowCases: [(String, String)] = [
        ("actions=drop", "actions=drop"),
        ("priority=1 ip actions=drop", "priority=1,ip actions=drop"),
        ("in_port=LOCAL,actions=drop", "in_port=LOCAL actions=drop"),
        ("in_port=65534,actions=drop", "in_port=LOCAL actions=drop"),
        ("in_port=vnet0,actions=drop", "in_port=1 actions=drop"),
        ("dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop", "dl_src=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop"),
        ("dl_dst=AA:BB:CC:DD:EE:FF/ff:ff:ff:ff:ff:ff,actions=drop", "dl_dst=aa:bb:cc:dd:ee:ff actions=drop"),
        ("eth_src=0:1:2:3:4:5,eth_dst=a:b:c:d:e:f,actions=drop", "dl_src=00:01:02:03:04:05,dl_dst=0a:0b:0c:0d:0e:0f actions=drop"),
        ("dl_type=0x88cc,actions=drop", "dl_type=0x88cc actions=drop"),
        ("dl_type=2048,actions=drop", "ip actions=drop"),
        ("dl_vlan=5,actions=drop", "dl_vlan=5 actions=drop"),
        ("dl_vlan_pcp=3,dl_vlan=5,actions=drop", "dl_vlan=5,dl_vlan_pcp=3 actions=drop"),
        ("dl_vlan_pcp=7,actions=drop", "dl_vlan_pcp=7 actions=drop"),
        ("vlan_tci=0x1000/0x1000,actions=drop", "vlan_tci=0x1000/0x1000 actions=drop"),
        ("vlan_tci=0x1005/0x1fff,actions=drop", "dl_vlan=5 actions=drop"),
        ("vlan_tci=0x6005,actions=drop", "vlan_tci=0x6005 actions=drop"),
        ("arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_sha=52:54:00:00:00:01,arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00,actions=drop",
         "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_op=1,arp_sha=52:54:00:00:00:01,arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00 actions=drop"),
        ("dl_type=0x0806,nw_src=10.0.0.1,nw_proto=2,actions=drop", "arp,arp_spa=10.0.0.1,arp_op=2 actions=drop"),
        ("rarp,arp_op=3,actions=drop", "rarp,arp_op=3 actions=drop"),
        ("ip,nw_src=10.0.0.7/255.255.255.0,nw_dst=10.1.0.0/255.0.255.0,actions=drop",
         "ip,nw_src=10.0.0.0/24,nw_dst=10.0.0.0/255.0.255.0 actions=drop"),
        ("ip,nw_src=0.0.0.0/0,nw_dst=1.2.3.4/32,actions=drop", "ip,nw_dst=1.2.3.4 actions=drop"),
        ("ip,ip_src=192.168.0.1,ip_dst=192.168.0.2,actions=drop", "ip,nw_src=192.168.0.1,nw_dst=192.168.0.2 actions=drop"),
        ("ip,nw_proto=47,actions=drop", "ip,nw_proto=47 actions=drop"),
        ("dl_type=0x0800,nw_proto=6,actions=drop", "tcp actions=drop"),
        ("ipv6,nw_proto=58,actions=drop", "icmp6 actions=drop"),
        ("ip,nw_tos=184,nw_ecn=2,nw_ttl=64,actions=drop", "ip,nw_tos=184,nw_ecn=2,nw_ttl=64 actions=drop"),
        ("ip,ip_dscp=46,actions=drop", "ip,nw_tos=184 actions=drop"),
        ("ipv6,ip_ecn=3,actions=drop", "ipv6,nw_ecn=3 actions=drop"),
        ("ip,nw_frag=no,actions=drop", "ip,nw_frag=no actions=drop"),
        ("ip,nw_frag=yes,actions=drop", "ip,nw_frag=yes actions=drop"),
        ("ip,nw_frag=first,actions=drop", "ip,nw_frag=first actions=drop"),
        ("ip,nw_frag=later,actions=drop", "ip,nw_frag=later actions=drop"),
        ("ip,ip_frag=not_later,actions=drop", "ip,nw_frag=not_later actions=drop"),
        ("ipv6,ipv6_src=2001:DB8::/32,ipv6_dst=fe80::1,ipv6_label=0x12345,actions=drop",
         "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=fe80::1,ipv6_label=0x12345 actions=drop"),
        ("ipv6,ipv6_src=::ffff:10.0.0.1,ipv6_dst=2001:db8::1/ffff:ffff::ffff,actions=drop",
         "ipv6,ipv6_src=::ffff:10.0.0.1,ipv6_dst=2001:db8::1/ffff:ffff::ffff actions=drop"),
        ("ipv6,ipv6_src=2001:db8:0:0:1:0:0:1,ipv6_dst=::,actions=drop", "ipv6,ipv6_src=2001:db8::1:0:0:1,ipv6_dst=:: actions=drop"),
        ("ipv6,ipv6_src=1:0:0:2:0:0:0:3/64,ipv6_dst=::1/127,actions=drop", "ipv6,ipv6_src=1:0:0:2::/64,ipv6_dst=::/127 actions=drop"),
        ("ipv6,ipv6_label=5/0xf,actions=drop", "ipv6,ipv6_label=0x00005/0x0000f actions=drop"),
        ("tcp,tp_src=80,tp_dst=0x50/0xfff0,actions=drop", "tcp,tp_src=80,tp_dst=0x50/0xfff0 actions=drop"),
        ("tcp,tcp_src=0x1bb,tcp_dst=8080,actions=drop", "tcp,tp_src=443,tp_dst=8080 actions=drop"),
        ("udp,udp_src=53,actions=drop", "udp,tp_src=53 actions=drop"),
        ("udp6,udp_dst=4341,actions=drop", "udp6,tp_dst=4341 actions=drop"),
        ("sctp6,sctp_dst=9,actions=drop", "sctp6,tp_dst=9 actions=drop"),
        ("sctp,sctp_src=1/1,actions=drop", "sctp,tp_src=0x1/0x1 actions=drop"),
        ("tcp,tcp_flags=+syn-ack,actions=drop", "tcp,tcp_flags=+syn-ack actions=drop"),
        ("tcp,tcp_flags=syn|ack,actions=drop", "tcp,tcp_flags=syn|ack actions=drop"),
        ("tcp,tcp_flags=0,actions=drop", "tcp,tcp_flags=0 actions=drop"),
        ("tcp6,tcp_flags=0x012/0x0ff,actions=drop", "tcp6,tcp_flags=-fin+syn-rst-psh+ack-urg-ece-cwr actions=drop"),
        ("tcp,tcp_flags=+ns-fin,actions=drop", "tcp,tcp_flags=-fin+ns actions=drop"),
        ("tcp,tcp_flags=0x202/0xe02,actions=drop", "tcp,tcp_flags=0x202/0xe02 actions=drop"),
        ("tcp,tcp_flags=syn|0x200,actions=drop", "tcp,tcp_flags=syn|0x200 actions=drop"),
        ("icmp,icmp_type=8,icmp_code=0,actions=drop", "icmp,icmp_type=8,icmp_code=0 actions=drop"),
        ("icmp6,icmpv6_type=135,icmpv6_code=0,actions=drop", "icmp6,icmp_type=135,icmp_code=0 actions=drop"),
        ("igmp,actions=drop", "igmp actions=drop"),
        ("mpls,actions=drop", "mpls actions=drop"),
        ("tun_id=0x5,in_port=2,actions=drop", "tun_id=0x5,in_port=2 actions=drop"),
        ("tun_id=0,actions=drop", "tun_id=0 actions=drop"),
        ("tunnel_id=0x5/0xff,tun_src=192.168.1.9/24,tun_dst=192.168.1.252,actions=drop",
         "tun_id=0x5/0xff,tun_src=192.168.1.0/24,tun_dst=192.168.1.252 actions=drop"),
        ("tun_id=0xffffffffffffffff,actions=drop", "tun_id=0xffffffffffffffff actions=drop"),
        ("nw_dst=1.2.3.4,in_port=3,ip,tun_id=1,dl_src=00:00:00:00:00:01,vlan_tci=0,nw_ttl=9,tp_dst=80,tcp,actions=drop",
         "tcp,tun_id=0x1,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:01,nw_dst=1.2.3.4,nw_ttl=9,tp_dst=80 actions=drop"),
        ("priority=65535,cookie=0x1234,idle_timeout=10,hard_timeout=20,ip,actions=drop",
         "cookie=0x1234, idle_timeout=10, hard_timeout=20, priority=65535,ip actions=drop"),
        ("cookie=18,hard_timeout=0x10,table=0,actions=NORMAL", "cookie=0x12, hard_timeout=16, actions=NORMAL"),
        ("priority=32768,actions=drop", "actions=drop"),
        ("priority=1,priority=7,ip,tcp,actions=drop", "priority=7,tcp actions=drop"),
        ("\tpriority=5 , in_port=2\n actions=output:1", "priority=5,in_port=2 actions=output:1"),
        ("priority=5 actions = output:1", "priority=5 actions=output:1"),
        ("ip actions= drop", "ip actions=drop"),
    ]

    @Test(arguments: flowCases)
    func flowRoundTrip(_ input: String, _ canonical: String) throws {
        let rule = try parser.parseFlow(input)
        let printed = FlowFormatter.flow(rule)
        #expect(printed == canonical)
        let again = try parser.parseFlow(printed)
        #expect(again == rule)
        #expect(FlowFormatter.flow(again) == printed)
    }

    static let actionCases: [(String, String)] = [
        ("output:2", "output:2"),
        ("2", "output:2"),
        ("OUTPUT:3,output=4", "output:3,output:4"),
        ("normal", "NORMAL"),
        ("NORMAL", "NORMAL"),
        ("flood,all,local,in_port", "FLOOD,ALL,LOCAL,IN_PORT"),
        ("output:LOCAL,output:in_port,output:NORMAL", "LOCAL,IN_PORT,NORMAL"),
        ("output:65534", "LOCAL"),
        ("output:4294967294", "LOCAL"),
        ("output:vnet0,lisp0", "output:1,output:2"),
        ("drop", "drop"),
        ("DROP,drop", "drop"),
        ("mod_dl_src:00:11:22:33:44:55,mod_dl_dst:AA:BB:CC:DD:EE:FF", "mod_dl_src:00:11:22:33:44:55,mod_dl_dst:aa:bb:cc:dd:ee:ff"),
        ("mod_nw_src:10.0.0.1,mod_nw_dst:10.0.0.2,mod_nw_tos:184", "mod_nw_src:10.0.0.1,mod_nw_dst:10.0.0.2,mod_nw_tos:184"),
        ("mod_tp_src:1000,mod_tp_dst:0xffff", "mod_tp_src:1000,mod_tp_dst:65535"),
        ("mod_vlan_vid:100,mod_vlan_pcp:5", "mod_vlan_vid:100,mod_vlan_pcp:5"),
        ("strip_vlan,pop_vlan,push_vlan:0x8100,push_vlan:0x88a8,dec_ttl", "strip_vlan,strip_vlan,push_vlan:0x8100,push_vlan:0x88a8,dec_ttl"),
        ("set_tunnel:5,set_tunnel:0,set_tunnel64:0x100000000,set_tunnel64:7", "set_tunnel:0x5,set_tunnel:0,set_tunnel64:0x100000000,set_tunnel:0x7"),
        ("mod_nw_ttl:5,set_nw_ttl:6", "set_field:5->nw_ttl,set_field:6->nw_ttl"),
        ("set_field:10.0.0.1->nw_src,set_field:10.0.0.2->ip_dst", "set_field:10.0.0.1->nw_src,set_field:10.0.0.2->nw_dst"),
        ("set_field:52:54:00:00:00:01->eth_dst,set_field:52:54:00:00:00:02->dl_src",
         "set_field:52:54:00:00:00:01->dl_dst,set_field:52:54:00:00:00:02->dl_src"),
        ("set_field:0x1005->vlan_tci,set_field:7->dl_vlan,set_field:2->dl_vlan_pcp",
         "set_field:0x1005->vlan_tci,mod_vlan_vid:7,mod_vlan_pcp:2"),
        ("set_field:5->tun_id,set_field:1.1.1.1->tun_src,set_field:1.1.1.2->tun_dst",
         "set_field:0x5->tun_id,set_field:1.1.1.1->tun_src,set_field:1.1.1.2->tun_dst"),
        ("set_field:2001:db8::1->ipv6_src,set_field:::1->ipv6_dst", "set_field:2001:db8::1->ipv6_src,set_field:::1->ipv6_dst"),
        ("set_field:80->tcp_dst,set_field:53->udp_src,set_field:1->tp_src", "set_field:80->tp_dst,set_field:53->tp_src,set_field:1->tp_src"),
        ("set_field:64->nw_ttl,set_field:3->in_port,set_field:LOCAL->in_port", "set_field:64->nw_ttl,set_field:3->in_port,set_field:LOCAL->in_port"),
        ("set_field:0x12345->ipv6_label,set_field:2->arp_op", "set_field:0x12345->ipv6_label,set_field:2->arp_op"),
        ("set_field:00:00:00:00:00:01->arp_sha,set_field:00:00:00:00:00:02->arp_tha,set_field:1.2.3.4->arp_spa",
         "set_field:00:00:00:00:00:01->arp_sha,set_field:00:00:00:00:00:02->arp_tha,set_field:1.2.3.4->arp_spa"),
        ("set_field:184->nw_tos,set_field:46->ip_dscp", "mod_nw_tos:184,set_field:46->ip_dscp"),
        ("mod_nw_ecn:2,set_field:1->nw_ecn,set_field:3->ip_ecn,mod_nw_ecn:0",
         "mod_nw_ecn:2,set_field:1->nw_ecn,set_field:3->nw_ecn,mod_nw_ecn:0"),
        ("set_field:10.0.0.1->arp_spa,set_field:10.0.0.2->arp_tpa,set_field:0x2->arp_op",
         "set_field:10.0.0.1->arp_spa,set_field:10.0.0.2->arp_tpa,set_field:2->arp_op"),
        ("set_field:0xfffff->ipv6_label,set_field:0->ipv6_label", "set_field:0xfffff->ipv6_label,set_field:0->ipv6_label"),
        ("set_field:8->icmp_type,set_field:0->icmpv6_code", "set_field:8->tp_src,set_field:0->tp_dst"),
        ("output:1 output:2", "output:1,output:2"),
    ]

    @Test(arguments: actionCases)
    func actionRoundTrip(_ input: String, _ canonical: String) throws {
        let actions = try parser.parseActions(input)
        let printed = FlowFormatter.actions(actions)
        #expect(printed == canonical)
        let again = try parser.parseActions(printed)
        #expect(again == actions)
    }

    /// Found by fuzz/FuzzFlowSyntax: mod_nw_ttl/set_nw_ttl without an ip match parse (OVS accepts
    /// them there too) but were printed as `set_field:N->nw_ttl`, which needs ip or ipv6 in the
    /// match, so the printed flow (and a saved flow naming a port) did not parse again.
    @Test func ttlActionWithoutIPMatchPrintsAsTextThatParsesAgain() throws {
        for text in ["actions=set_nw_ttl:0\n\n\n\n\n156\n", "in_port=1,actions=mod_nw_ttl:5", "ip,actions=mod_nw_ttl:5",
                     "ipv6,actions=set_field:7->nw_ttl", "arp,actions=mod_nw_ttl:9,output:2"] {
            let rule = try parser.parseFlow(text)
            let printed = FlowFormatter.flow(rule)
            #expect(try parser.parseFlow(printed) == rule, "\(text) printed as \(printed)")
        }
        #expect(FlowFormatter.flow(try parser.parseFlow("in_port=1,actions=mod_nw_ttl:5")) == "in_port=1 actions=mod_nw_ttl:5")
        #expect(FlowFormatter.flow(try parser.parseFlow("ip,actions=mod_nw_ttl:5")) == "ip actions=set_field:5->nw_ttl")
    }

    @Test func actionValues() throws {
        #expect(try parser.parseActions("output:2,NORMAL,FLOOD,ALL,LOCAL,IN_PORT")
            == [.output(2), .normal, .flood, .all, .local, .inPort])
        #expect(try parser.parseActions("drop") == [])
        #expect(try parser.parseActions("mod_nw_src:10.0.0.1,mod_nw_tos:184,mod_vlan_vid:4095,push_vlan:0x88a8")
            == [.modNwSrc(0x0a00_0001), .modNwTos(184), .modVlanVid(4095), .pushVlan(0x88a8)])
        #expect(try parser.parseActions("set_field:2001:db8::1->ipv6_src")
            == [.setIPv6Src(0x2001_0db8_0000_0000, 1)])
        #expect(try parser.parseActions("set_field:::ffff:1.2.3.4->ipv6_dst")
            == [.setIPv6Dst(0, 0x0000_ffff_0102_0304)])
        #expect(try parser.parseActions("set_field:0x5->tun_id,set_tunnel:0x5,set_field:10.0.0.9->tun_dst")
            == [.setField(.tunId, 5), .setTunnel(5), .setField(.tunDst, 0x0a00_0009)])
        #expect(try parser.parseActions("set_field:46->ip_dscp,set_field:3->dl_vlan_pcp")
            == [.setSharedField(.ipDscp, 46), .modVlanPcp(3)])
        #expect(try parser.parseActions("mod_nw_ecn:3,set_field:2->ip_ecn,set_field:0x12345->ipv6_label")
            == [.modNwEcn(3), .setSharedField(.nwEcn, 2), .setField(.ipv6Label, 0x12345)])
        #expect(try parser.parseActions("set_field:10.0.0.1->arp_spa,set_field:10.0.0.2->arp_tpa,set_field:2->arp_op")
            == [.setSharedField(.arpSpa, 0x0a00_0001), .setSharedField(.arpTpa, 0x0a00_0002), .setSharedField(.arpOp, 2)])
    }

    @Test func setFieldPrerequisitesAreCheckedAgainstTheMatch() throws {
        let r = try parser.parseFlow("ip,actions=set_field:10.0.0.1->nw_dst,output:2")
        #expect(r.actions == [.setField(.nwDst, 0x0a00_0001), .output(2)])
        #expect(try parser.parseFlow("tcp6,actions=set_field:80->tcp_dst,set_field:::1->ipv6_dst").actions.count == 2)
        // Legacy mod_* actions are not checked (OVS accepts them with OpenFlow 1.0).
        #expect(try parser.parseFlow("in_port=1,actions=mod_nw_dst:10.0.0.1").actions == [.modNwDst(0x0a00_0001)])
        // ARP fields need an arp (or rarp) match; the IP ones ip or ipv6; ipv6_label ipv6.
        #expect(try parser.parseFlow("arp,actions=set_field:10.0.0.1->arp_spa,set_field:52:54:00:00:00:01->arp_sha,set_field:2->arp_op").actions.count == 3)
        #expect(try parser.parseFlow("dl_type=0x8035,actions=set_field:10.0.0.1->arp_tpa").actions.count == 1)
        #expect(try parser.parseFlow("ipv6,actions=set_field:1->nw_ecn,set_field:10->ip_dscp,set_field:5->ipv6_label").actions.count == 3)
        #expect(try parser.parseFlow("ip,actions=set_field:3->ip_ecn").actions == [.setSharedField(.nwEcn, 3)])
        // What earlier versions saved for arp_spa/arp_tpa (nw_src/nw_dst under an arp match) loads as them.
        #expect(try parser.parseFlow("arp,actions=set_field:1.2.3.4->nw_src,set_field:1.2.3.5->nw_dst").actions
            == [.setSharedField(.arpSpa, 0x0102_0304), .setSharedField(.arpTpa, 0x0102_0305)])
        // Legacy mod_nw_ecn is not checked either (OVS: OpenFlow 1.0 only, accepted).
        #expect(try parser.parseFlow("actions=mod_nw_ecn:1").actions == [.modNwEcn(1)])
        // parseActions alone has no match to check against.
        #expect(try parser.parseActions("set_field:10.0.0.1->nw_dst") == [.setField(.nwDst, 0x0a00_0001)])
    }

    @Test func matchValuesAndSharedStorage() throws {
        let m = try parser.parseMatch("ip,nw_tos=184,nw_ecn=1").match
        #expect(m.value(.nwTos) == 185 && m.mask(.nwTos) == 0xff)
        let v = try parser.parseMatch("dl_vlan=5,dl_vlan_pcp=3").match
        #expect(v.value(.vlanTCI) == 0x7005 && v.mask(.vlanTCI) == 0xffff)
        let a = try parser.parseMatch("arp,arp_op=2,arp_spa=10.0.0.0/8").match
        #expect(a.value(.nwProto) == 2 && a.value(.nwSrc) == 0x0a00_0000 && a.mask(.nwSrc) == 0xff00_0000)
        let i = try parser.parseMatch("icmp,icmp_type=3,icmp_code=1").match
        #expect(i.value(.tpSrc) == 3 && i.value(.tpDst) == 1 && i.isExact(.tpSrc))
        let f = try parser.parseMatch("ip,nw_frag=later").match
        #expect(f.value(.nwFrag) == FlowConstants.fragAny | FlowConstants.fragLater && f.mask(.nwFrag) == 3)
        let six = try parser.parseMatch("ipv6,ipv6_src=2001:db8::/32").match
        #expect(six.value(.ipv6SrcHigh) == 0x2001_0db8_0000_0000 && six.mask(.ipv6SrcHigh) == 0xffff_ffff_0000_0000)
        #expect(six.isWildcarded(.ipv6SrcLow))
        let t = try parser.parseMatch("tcp,tcp_flags=+syn-ack").match
        #expect(t.value(.tcpFlags) == 0x002 && t.mask(.tcpFlags) == 0x012)
        let tun = try parser.parseMatch("tun_id=0x5/0xff,tun_src=10.0.0.1").match
        #expect(tun.value(.tunId) == 5 && tun.mask(.tunId) == 0xff && tun.value(.tunSrc) == 0x0a00_0001)
        // vlan_tci after dl_vlan replaces it, as OVS's match_set_dl_tci_masked.
        #expect(try parser.parseMatch("dl_vlan=5,vlan_tci=0").match.value(.vlanTCI) == 0)
    }

    // MARK: Filters

    @Test func filters() throws {
        let f = try parser.parseMatch("priority=5,ip,cookie=0x13/0xf0,table=0")
        #expect(f.priority == 5)
        #expect(f.cookie?.value == 0x10 && f.cookie?.mask == 0xf0)
        #expect(FlowFormatter.match(f.match, priority: FlowRule.defaultPriority) == "ip")
        let none = try parser.parseMatch("")
        #expect(none.match == Match() && none.priority == nil && none.cookie == nil)
        #expect(try parser.parseMatch("in_port=vnet0 dl_type=0x0806").match.value(.inPort) == 1)
        #expect(none.outPort == nil)
    }

    @Test func outPortFilter() throws {
        #expect(try parser.parseMatch("out_port=2").outPort == 2)
        #expect(try parser.parseMatch("ip,out_port=lisp0").outPort == 2)
        #expect(try parser.parseMatch("out_port=LOCAL").outPort == OpenFlowPort.local)
        #expect(try parser.parseMatch("out_port=local").outPort == OpenFlowPort.local)
        #expect(try parser.parseMatch("out_port=NORMAL").outPort == OpenFlowPort.normal)
        #expect(try parser.parseMatch("out_port=4294967294").outPort == OpenFlowPort.local)
        // NONE/ANY: OpenFlow's "any port", no filter.
        #expect(try parser.parseMatch("out_port=NONE").outPort == nil)
        #expect(try parser.parseMatch("out_port=ANY").outPort == nil)
        // What out_port compares: the port an action outputs to, reserved ports included.
        let actions = try parser.parseActions("output:3,NORMAL,FLOOD,ALL,LOCAL,IN_PORT,mod_nw_ecn:1")
        #expect(actions.map(\.outputPort) == [3, OpenFlowPort.normal, OpenFlowPort.flood, OpenFlowPort.all,
                                              OpenFlowPort.local, OpenFlowPort.inPort, nil])
    }

    @Test func modificationCookies() throws {
        let both = try parser.parseModification("cookie=0x15/0xf0,cookie=0x7,in_port=1,actions=drop")
        #expect(both.cookieMatch?.value == 0x10 && both.cookieMatch?.mask == 0xf0)
        #expect(both.newCookie == 7 && both.rule.cookie == 7)
        #expect(both.rule.match.value(.inPort) == 1 && both.rule.actions.isEmpty)
        let plain = try parser.parseModification("priority=5,ip,actions=output:2")
        #expect(plain.cookieMatch == nil && plain.newCookie == nil && plain.rule.cookie == 0 && plain.rule.priority == 5)
        let masked = try parser.parseModification("cookie=0x5/-1,actions=NORMAL")
        #expect(masked.cookieMatch?.mask == .max && masked.newCookie == nil)
    }

    // MARK: Port names

    @Test func portNamesResolveThroughTheClosure() throws {
        var asked: [String] = []
        let p = FlowParser(portNumber: { name in
            asked.append(name)
            return ports[name]
        })
        let r = try p.parseFlow("in_port=vnet0,actions=output:lisp0,vnet0,LOCAL,output:\"lisp0\"")
        #expect(r.match.value(.inPort) == 1)
        #expect(r.actions == [.output(2), .output(1), .local, .output(2)])
        #expect(!asked.contains("LOCAL"))  // reserved names win, as in OVS
        #expect(try p.parseFlow("in_port=\"vnet0\",actions=drop").match.value(.inPort) == 1)
        #expect(throws: FlowSyntaxError.self) { try p.parseFlow("in_port=0x2,actions=drop") }  // decimal only, as OVS
        #expect(throws: FlowSyntaxError.self) { try FlowParser().parseFlow("in_port=vnet0,actions=drop") }
    }

    // MARK: Errors

    /// (parser function, text, offending token, message prefix)
    static let errorCases: [(String, String, String, String)] = [
        ("flow", "priority=1,ip,nw_src=10.1.1.0/33,actions=drop", "10.1.1.0/33", "bad value \"10.1.1.0/33\" for nw_src"),
        ("flow", "priority=1,foo=2,actions=drop", "foo", "unknown field \"foo\""),
        ("flow", "priority=1,ip", "", "must specify an action"),
        ("flow", "priority=1,actions=", "actions", "empty action list"),
        ("flow", "priority=1,actions:drop", "actions", "expected \"=\" after actions"),
        ("flow", "priority=65536,actions=drop", "65536", "bad value \"65536\" for priority"),
        ("flow", "priority=,actions=drop", "priority", "missing value for priority"),
        ("flow", "ip,nw_src,actions=drop", "nw_src", "missing value for nw_src"),
        ("flow", "ip=1,actions=drop", "ip=1", "unexpected value for ip"),
        ("flow", "table=1,actions=drop", "1", "bad value \"1\" for table"),
        ("flow", "cookie=1/1,actions=drop", "1/1", "bad value \"1/1\" for cookie"),
        ("flow", "cookie=0x1g,actions=drop", "0x1g", "bad value \"0x1g\" for cookie"),
        ("flow", "idle_timeout=-1,actions=drop", "-1", "bad value \"-1\" for idle_timeout"),
        ("flow", "out_port=1,actions=drop", "out_port", "out_port is not allowed here"),
        ("flow", "out_group=1,actions=drop", "out_group", "unsupported keyword \"out_group\""),
        ("flow", "in_port=vnet9,actions=drop", "vnet9", "bad value \"vnet9\" for in_port"),
        ("flow", "in_port=70000,actions=drop", "70000", "bad value \"70000\" for in_port"),
        ("flow", "dl_dst=01:02:03,actions=drop", "01:02:03", "bad value \"01:02:03\" for dl_dst"),
        ("flow", "dl_dst=01:02:03:04:05:0g,actions=drop", "01:02:03:04:05:0g", "bad value"),
        ("flow", "dl_type=0x10000,actions=drop", "0x10000", "bad value \"0x10000\" for dl_type"),
        ("flow", "dl_type=0x0800/0xffff,actions=drop", "0x0800/0xffff", "bad value"),
        ("flow", "dl_vlan=4096,actions=drop", "4096", "bad value \"4096\" for dl_vlan"),
        ("flow", "dl_vlan_pcp=8,actions=drop", "8", "bad value \"8\" for dl_vlan_pcp"),
        ("flow", "vlan_tci=0x10000,actions=drop", "0x10000", "bad value"),
        ("flow", "ip,nw_src=10.1.1,actions=drop", "10.1.1", "bad value \"10.1.1\" for nw_src"),
        ("flow", "ip,nw_src=10.1.1.256,actions=drop", "10.1.1.256", "bad value"),
        ("flow", "ip,nw_dst=10.0.0.0/255.255.0.x,actions=drop", "10.0.0.0/255.255.0.x", "bad value"),
        ("flow", "ip,nw_tos=3,actions=drop", "3", "bad value \"3\" for nw_tos"),
        ("flow", "ip,ip_dscp=64,actions=drop", "64", "bad value \"64\" for ip_dscp"),
        ("flow", "ip,nw_ecn=4,actions=drop", "4", "bad value \"4\" for nw_ecn"),
        ("flow", "ip,nw_ttl=256,actions=drop", "256", "bad value"),
        ("flow", "ip,nw_frag=maybe,actions=drop", "maybe", "bad value \"maybe\" for nw_frag"),
        ("flow", "ip,nw_proto=0x100,actions=drop", "0x100", "bad value"),
        ("flow", "ipv6,ipv6_src=2001:::1,actions=drop", "2001:::1", "bad value \"2001:::1\" for ipv6_src"),
        ("flow", "ipv6,ipv6_src=1:2:3:4:5:6:7:8:9,actions=drop", "1:2:3:4:5:6:7:8:9", "bad value"),
        ("flow", "ipv6,ipv6_dst=::1/129,actions=drop", "::1/129", "bad value"),
        ("flow", "ipv6,ipv6_label=0x100000,actions=drop", "0x100000", "bad value"),
        ("flow", "tcp,tp_dst=70000,actions=drop", "70000", "bad value \"70000\" for tp_dst"),
        ("flow", "tcp,tp_dst=80/0x1ffff,actions=drop", "80/0x1ffff", "bad value"),
        ("flow", "tcp,tcp_flags=+syn+syn,actions=drop", "+syn+syn", "bad value"),
        ("flow", "tcp,tcp_flags=syn|bogus,actions=drop", "syn|bogus", "bad value"),
        ("flow", "tcp,tcp_flags=0x1000,actions=drop", "0x1000", "bad value"),
        ("flow", "icmp,icmp_type=256,actions=drop", "256", "bad value"),
        ("flow", "tun_id=0x10000000000000000,actions=drop", "0x10000000000000000", "bad value"),
        ("flow", "tun_src=1.2.3.4/33,actions=drop", "1.2.3.4/33", "bad value \"1.2.3.4/33\" for tun_src"),
        // Prerequisites
        ("flow", "nw_src=10.0.0.1,actions=drop", "nw_src", "missing prerequisite for nw_src"),
        ("flow", "ipv6,nw_dst=10.0.0.1,actions=drop", "nw_dst", "missing prerequisite for nw_dst"),
        ("flow", "ip,arp_spa=10.0.0.1,actions=drop", "arp_spa", "missing prerequisite for arp_spa"),
        ("flow", "arp_sha=00:00:00:00:00:01,actions=drop", "arp_sha", "missing prerequisite"),
        ("flow", "ip,ipv6_src=::1,actions=drop", "ipv6_src", "missing prerequisite for ipv6_src"),
        ("flow", "ip,tp_dst=80,actions=drop", "tp_dst", "missing prerequisite for tp_dst"),
        ("flow", "udp,tcp_src=1,actions=drop", "tcp_src", "missing prerequisite for tcp_src"),
        ("flow", "tcp,udp_dst=1,actions=drop", "udp_dst", "missing prerequisite"),
        ("flow", "udp,tcp_flags=+syn,actions=drop", "tcp_flags", "missing prerequisite"),
        ("flow", "tcp,icmp_type=8,actions=drop", "icmp_type", "missing prerequisite"),
        ("flow", "icmp,icmpv6_type=8,actions=drop", "icmpv6_type", "missing prerequisite"),
        ("flow", "nw_proto=6,actions=drop", "nw_proto", "missing prerequisite"),
        ("flow", "nw_ttl=6,actions=drop", "nw_ttl", "missing prerequisite"),
        ("flow", "icmp,icmp_type=8,tcp,actions=drop", "icmp_type", "missing prerequisite"),
        // Actions
        ("flow", "actions=output:1,frobnicate", "frobnicate", "unknown action \"frobnicate\""),
        ("flow", "actions=controller", "controller", "unsupported action \"controller\""),
        ("flow", "actions=resubmit(,1)", "resubmit", "unsupported action"),
        ("flow", "actions=output:CONTROLLER", "CONTROLLER", "unsupported action"),
        ("flow", "actions=drop,output:1", "drop", "\"drop\" must be the only action"),
        ("flow", "actions=output:1,drop", "drop", "\"drop\" must be the only action"),
        ("flow", "actions=drop:1", "drop:1", "unexpected value for drop"),
        ("flow", "actions=output", "output", "missing argument for output"),
        ("flow", "actions=output:1x", "1x", "bad value \"1x\" for output"),
        ("flow", "actions=output:65280", "65280", "bad value"),
        ("flow", "actions=output:ANY", "ANY", "bad value"),
        ("flow", "actions=strip_vlan:1", "strip_vlan:1", "unexpected value for strip_vlan"),
        ("flow", "actions=dec_ttl(1,2)", "dec_ttl(1,2", "unsupported form of dec_ttl"),
        ("flow", "actions=mod_dl_dst:52:54:00:b8:27", "52:54:00:b8:27", "bad value"),
        ("flow", "actions=mod_nw_src:1.2.3.4/24", "1.2.3.4/24", "bad value"),
        ("flow", "actions=mod_nw_tos:3", "3", "bad value \"3\" for mod_nw_tos"),
        ("flow", "actions=mod_tp_dst:65536", "65536", "bad value"),
        ("flow", "actions=mod_vlan_vid:4096", "4096", "bad value \"4096\" for mod_vlan_vid"),
        ("flow", "actions=mod_vlan_pcp:8", "8", "bad value"),
        ("flow", "actions=push_vlan:0x0800", "0x0800", "bad value"),
        ("flow", "actions=set_tunnel:0x1ffffffffffffffff", "0x1ffffffffffffffff", "bad value"),
        ("flow", "actions=set_field:1.2.3.4->nw_src", "set_field:1.2.3.4->nw_src", "set_field to nw_src is inconsistent with the match"),
        ("flow", "ip,actions=set_field:1.2.3.4->foo", "foo", "unknown field \"foo\" in set_field"),
        ("flow", "ip,actions=set_field:1.2.3.4", "1.2.3.4", "bad value \"1.2.3.4\" for set_field"),
        ("flow", "ip,actions=set_field:1.2.3.4->", "1.2.3.4->", "bad value"),
        ("flow", "ip,actions=set_field:->nw_src", "->nw_src", "bad value"),
        ("flow", "ip,actions=set_field:6->nw_proto", "nw_proto", "nw_proto is read-only"),
        ("flow", "ip,actions=set_field:1.2.3.4/8->nw_src", "1.2.3.4/8", "bad value \"1.2.3.4/8\" for nw_src in set_field"),
        ("flow", "ip,actions=set_field:1.2.3.400->nw_src", "1.2.3.400", "bad value"),
        ("flow", "ip,actions=mod_nw_ecn:4", "4", "bad value \"4\" for mod_nw_ecn"),
        ("flow", "ip,actions=mod_nw_ecn", "mod_nw_ecn", "missing argument for mod_nw_ecn"),
        ("flow", "ip,actions=set_field:4->nw_ecn", "4", "bad value \"4\" for nw_ecn in set_field"),
        ("flow", "ip,actions=set_field:64->ip_dscp", "64", "bad value \"64\" for ip_dscp in set_field"),
        ("flow", "ipv6,actions=set_field:0x100000->ipv6_label", "0x100000", "bad value"),
        ("flow", "ip,actions=set_field:10.0.0.1->arp_spa", "set_field:10.0.0.1->arp_spa",
         "set_field to arp_spa is inconsistent with the match"),
        ("flow", "ip,actions=output:1,set_field:52:54:00:00:00:01->arp_tha", "set_field:52:54:00:00:00:01->arp_tha",
         "set_field to arp_tha is inconsistent with the match"),
        ("flow", "ipv6,actions=set_field:1.2.3.4->nw_src", "set_field:1.2.3.4->nw_src", "set_field to nw_src is inconsistent"),
        ("flow", "arp,actions=set_field:1->nw_ecn", "set_field:1->nw_ecn", "set_field to nw_ecn is inconsistent"),
        ("flow", "ip,actions=set_field:1->ipv6_label", "set_field:1->ipv6_label", "set_field to ipv6_label is inconsistent"),
        ("flow", "actions=set_field:2->arp_op", "set_field:2->arp_op", "set_field to arp_op is inconsistent"),
        ("actions", "", "", "empty action list"),
        ("actions", "output:1,,bogus", "bogus", "unknown action"),
        // Filters
        ("match", "ip,actions=drop", "actions", "actions are not allowed here"),
        ("match", "cookie=5", "5", "bad value \"5\" for cookie"),
        ("match", "out_port=vnet9", "vnet9", "bad value \"vnet9\" for out_port"),
        ("match", "out_port=", "out_port", "missing value for out_port"),
        ("match", "out_port=-1", "-1", "bad value \"-1\" for out_port"),
        // mod-flows: OVS takes no out_port there; a cookie mask selects, a plain cookie is set.
        ("modify", "out_port=1,actions=drop", "out_port", "out_port is not allowed here"),
        ("modify", "cookie=1/0xg,actions=drop", "1/0xg", "bad value \"1/0xg\" for cookie"),
        ("modify", "cookie=1/1", "", "must specify an action"),
        ("match", "idle_timeout=5", "idle_timeout", "idle_timeout is not allowed here"),
        ("match", "ip,tp_src=1", "tp_src", "missing prerequisite"),
        ("match", "in_port=1 junk", "junk", "unknown field \"junk\""),
    ]

    @Test(arguments: errorCases)
    func malformedInput(_ function: String, _ text: String, _ token: String, _ message: String) {
        do {
            switch function {
            case "flow": _ = try parser.parseFlow(text)
            case "actions": _ = try parser.parseActions(text)
            case "modify": _ = try parser.parseModification(text)
            default: _ = try parser.parseMatch(text)
            }
            Issue.record("\(text) parsed without error")
        } catch {
            #expect(error.token == token, "\(text): \(error)")
            #expect(error.position == (token.isEmpty ? text.count : offset(of: token, in: text)), "\(text): \(error)")
            #expect(error.message.hasPrefix(message), "\(text): \(error)")
        }
    }

    @Test func errorDescriptionNamesTokenAndPosition() {
        do {
            _ = try parser.parseFlow("priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/33,action=output:2")
            Issue.record("parsed")
        } catch {
            #expect(error.position == 54)
            #expect(error.token == "10.1.1.0/33")
            #expect(error.description == "bad value \"10.1.1.0/33\" for nw_src at position 54: prefix length must be 0..32")
        }
        do {
            _ = try parser.parseFlow("ip,nw_src=1.2.3.4,tp_dst=80,actions=drop")
            Issue.record("parsed")
        } catch {
            #expect(error.position == 18)
            #expect(error.description.hasPrefix("missing prerequisite for tp_dst at position 18: tp_dst requires tcp, udp or sctp"))
        }
    }

    @Test func positionsCountCharactersNotBytes() {
        do {
            _ = try parser.parseMatch("in_port=\"vnét0\" ip nw_src=1.2.3.4/40")
            Issue.record("parsed")
        } catch {
            #expect(error.token == "1.2.3.4/40")
            #expect(error.position == 26)
        }
        #expect((try? parser.parseMatch("in_port=vnét0"))?.match.value(.inPort) == 7)
    }

    // MARK: Formatter on its own

    @Test func formatterBasics() {
        #expect(FlowFormatter.match(Match(), priority: 0) == "priority=0")
        #expect(FlowFormatter.match(Match(), priority: FlowRule.defaultPriority) == "")
        #expect(FlowFormatter.actions([]) == "drop")
        var m = Match()
        m.set(.dlDst, 0x0200_0000_0000)
        #expect(FlowFormatter.match(m, priority: 3) == "priority=3,dl_dst=02:00:00:00:00:00")
        var rule = FlowRule(priority: 0, actions: [.normal])
        #expect(FlowFormatter.flow(rule) == "priority=0 actions=NORMAL")
        rule.priority = FlowRule.defaultPriority
        rule.cookie = 0xabc
        #expect(FlowFormatter.flow(rule) == "cookie=0xabc, actions=NORMAL")
        #expect(FlowFormatter.actions([.output(0xfffe), .setTunnel(0x1_0000_0000)]) == "LOCAL,set_tunnel64:0x100000000")
    }

    /// The parser works on UTF-8 bytes but falls back to Character semantics for text that is not
    /// ASCII, so messages stay as they were (e.g. "/" + a combining accent is not a "/").
    @Test func textThatIsNotASCIIKeepsItsMessages() {
        let cases: [(String, String)] = [
            ("ip,nw_src=10.0.0.1/\u{301}24,actions=drop",
             "bad value \"10.0.0.1/\u{301}24\" for nw_src at position 10: not an IPv4 address"),
            ("tcp,tp_dst=0x\u{301}12,actions=drop",
             "bad value \"0x\u{301}12\" for tp_dst at position 11: not a number (use decimal or 0x-prefixed hexadecimal)"),
            ("in_port=1\u{301},actions=drop", "bad value \"1\u{301}\" for in_port at position 8: port number out of range"),
            ("actions=chec\u{212A}_pkt_larger",  // KELVIN SIGN lower-cases to "k"
             "unsupported action \"chec\u{212A}_pkt_larger\" at position 8: vswift does not implement it"),
            ("ipv6,ipv6_src=::1/\u{301}64,actions=drop", "bad value \"::1/\u{301}64\" for ipv6_src at position 14: not an IPv6 address"),
        ]
        for (text, description) in cases {
            do {
                _ = try parser.parseFlow(text)
                Issue.record("\(text) parsed without error")
            } catch {
                #expect(error.description == description)
            }
        }
    }
}
