//! smoltcp over one netfront device: the interface (its MAC from the backend), a static
//! address or DHCPv4, the socket set, and one `poll` step the scheduler loop calls, with
//! smoltcp's timers on the kernel clock.

use crate::netfront::device::{self, Netfront};
use crate::{println, time};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// How long to wait for a tx completion when every tx buffer is in flight.
const TX_FULL_NS: u64 = 10_000_000;

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `ip=ADDR/PREFIX` and optionally `gw=ADDR`.
    Static {
        addr: [u8; 4],
        prefix: u8,
        gw: Option<[u8; 4]>,
    },
    Dhcp,
}

/// smoltcp's clock: the kernel's system time.
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// The interface, its device and sockets.
pub struct Stack {
    pub dev: Netfront,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    addr: Option<Ipv4Cidr>,
}

impl Stack {
    /// An interface on `dev` addressed as `addressing` says.
    pub fn new(mut dev: Netfront, addressing: Addressing) -> Stack {
        let mac = HardwareAddress::Ethernet(EthernetAddress(dev.mac()));
        let mut config = Config::new(mac);
        let m = dev.mac();
        let mac_bits = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]);
        config.random_seed = time::now_ns() ^ mac_bits;
        let iface = Interface::new(config, &mut dev, now());
        let mut stack = Stack {
            dev,
            iface,
            sockets: SocketSet::new(alloc::vec::Vec::new()),
            dhcp: None,
            addr: None,
        };
        match addressing {
            Addressing::Static { addr, prefix, gw } => {
                let [a, b, c, d] = addr;
                stack.set_address(
                    Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), prefix),
                    gw.map(|[a, b, c, d]| Ipv4Address::new(a, b, c, d)),
                );
            }
            Addressing::Dhcp => {
                stack.dhcp = Some(stack.sockets.add(dhcpv4::Socket::new()));
                println!("net: asking for an address by DHCP");
            }
        }
        stack
    }

    /// The address, once there is one.
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.addr
    }

    fn set_address(&mut self, cidr: Ipv4Cidr, gw: Option<Ipv4Address>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gw {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
        self.addr = Some(cidr);
        match gw {
            Some(gw) => println!("net: address {cidr}, gateway {gw}"),
            None => println!("net: address {cidr}, no gateway"),
        }
    }

    /// The device, the interface and sockets dropped (to close it).
    pub fn into_device(self) -> Netfront {
        self.dev
    }

    /// Replaces the device (a vif attached again), keeping the sockets.
    pub fn replace_device(&mut self, dev: Netfront) {
        self.iface
            .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(dev.mac())));
        self.dev = dev;
    }

    /// One step: the device's completions, smoltcp's ingress and egress, DHCP's news, and
    /// what that queued published to the backend.
    pub fn poll(&mut self) {
        self.dev.service();
        self.iface.poll(now(), &mut self.dev, &mut self.sockets);
        self.dhcp_step();
        self.dev.service();
    }

    /// One step with a budget: at most `packets` received frames go through smoltcp, then
    /// its egress (for a service that must not hold up others).
    pub fn poll_bounded(&mut self, packets: usize) {
        self.dev.service();
        for _ in 0..packets {
            let r = self
                .iface
                .poll_ingress_single(now(), &mut self.dev, &mut self.sockets);
            if r == smoltcp::iface::PollIngressSingleResult::None {
                break;
            }
        }
        self.iface
            .poll_egress(now(), &mut self.dev, &mut self.sockets);
        self.dhcp_step();
        self.dev.service();
    }

    /// When smoltcp next has a timer due (system time), if it has one.
    pub fn next_timer_ns(&mut self) -> Option<u64> {
        self.delay_ns().map(|d| time::now_ns().saturating_add(d))
    }

    /// smoltcp's next timer from now; "now" while frames wait for a tx buffer means "when
    /// the backend completes some", so it waits [`TX_FULL_NS`] instead of spinning.
    fn delay_ns(&mut self) -> Option<u64> {
        let d = self
            .iface
            .poll_delay(now(), &self.sockets)?
            .total_micros()
            .saturating_mul(1000);
        Some(if d == 0 && !self.dev.can_send() {
            TX_FULL_NS
        } else {
            d
        })
    }

    fn dhcp_step(&mut self) {
        let Some(h) = self.dhcp else {
            return;
        };
        let news = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            Some(dhcpv4::Event::Configured(c)) => Some(Some((c.address, c.router))),
            Some(dhcpv4::Event::Deconfigured) => Some(None),
            None => None,
        };
        match news {
            Some(Some((address, router))) => self.set_address(address, router),
            Some(None) => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                // smoltcp also reports this when the client starts over, lease or not.
                if self.addr.take().is_some() {
                    println!("net: DHCP lease lost");
                }
            }
            None => {}
        }
    }

    /// Sleeps until the device has news, smoltcp has a timer due, or `max_ns` passed.
    pub fn wait(&mut self, max_ns: u64) {
        let delay_ns = self.delay_ns().map_or(max_ns, |d| d.min(max_ns));
        if delay_ns > 0 {
            device::wait(time::now_ns() + delay_ns);
        }
    }
}
