// IronLB from TypeScript, through the SDK `pulumi package add ../../provider` generates.
import * as pulumi from "@pulumi/pulumi";
import * as ironlb from "@pulumi/ironlb";

const config = new pulumi.Config();
const ipam = new pulumi.StackReference(config.get("ipamStack") ?? "acme/ipam/prod");

// The install: namespace, CRDs, RBAC, the controller and the speaker DaemonSet.
const agent = new ironlb.NodeAgent("ironlb", {
    membershipKey: config.requireSecret("membershipKey"),
    nodeSelector: { "node-role.kubernetes.io/worker": "" },
});
const afterInstall = { dependsOn: [agent] };

// A shared pool whose ranges come from the IPAM stack: checked when they resolve.
const shared = new ironlb.IpPool("shared", {
    addresses: ipam.requireOutput("lanRanges") as pulumi.Output<string[]>,
    avoidBuggyIps: true,
    serviceAllocation: { priority: 10 },
}, afterInstall);

// A tenant: its namespaces (literal: they name child resources), its own pool and quotas.
const shop = new ironlb.Tenant("shop", {
    namespaces: ["shop-prod", "shop-staging"],
    pools: {
        "shop-bgp": { addresses: ["10.100.0.0/28", "fd00:100::/124"] },
    },
    maxAddresses: 8,
    maxLoadBalancerServices: 4,
}, afterInstall);

new ironlb.BgpPeer("tor-a", {
    myAsn: 64513,
    peerAsn: 64512,
    peerAddress: "10.20.0.1",
    holdTime: 9,
    password: config.requireSecret("torPassword"),
}, afterInstall);

new ironlb.BgpAdvertisement("shop", {
    ipPools: shop.poolNames,
    communities: ["64512:100"],
}, afterInstall);

new ironlb.L2Advertisement("shared", { ipPools: [shared.poolName] }, afterInstall);

const web = new ironlb.LoadBalancerService("web", {
    namespace: "shop-prod",
    serviceName: "web",
    selector: { app: "web" },
    ports: [{ port: 443, name: "https", targetPort: 8443 }],
    pool: "shop-bgp",
    ipFamilyPolicy: "PreferDualStack",
    ipFamilies: ["IPv4", "IPv6"],
}, { dependsOn: [shop] });

export const webIp = web.ip;
export const sharedAddresses = shared.addresses;
