//! `mirsal agency`: onboarding agencies, and the directory the router serves.
//!
//! `add CODE` does everything an agency needs to take part, in this order, each step
//! idempotent so that a run that failed half-way can simply be repeated:
//! 1. issues its signing and sealing certificates (unless the PKI already holds current
//!    ones);
//! 2. on the broker, through the management API ([`Broker`]): creates the vhost if it is
//!    missing, declares the exchanges of [`topology::EXCHANGES`], the ingress and
//!    dead-letter queues if they are missing (so submissions have somewhere to go before
//!    the router first runs), declares the inbox `mirsal.inbox.CODE` (a quorum queue with exactly the router's
//!    arguments, so the router's own declaration later is a no-op) bound from
//!    `mirsal.deliver` under CODE, and creates the agency's user — no tags, and exactly
//!    the permissions of DESIGN.md on the vhost (configure `^$`, write
//!    `^mirsal\.submit$`, read `^mirsal\.inbox\.CODE$`), with a random password for
//!    development or none with `--certificate-login` (TLS client certificate, `EXTERNAL`);
//! 3. writes the adapter bundle to hand to the agency ([`write_bundle`]);
//! 4. registers the agency in the directory — last, so that the router never sees an
//!    active agency without its user, its inbox and its bundle.
//!
//! `suspend` and `reactivate` only change the directory (the router refuses a suspended
//! agency's submissions; its user keeps reading its inbox). `remove` marks it removed,
//! revokes its certificates, clears its permissions on the vhost and deletes its broker
//! user, closing its connections; its inbox queue and the router's archive are kept.
//!
//! `--no-broker` skips every management API step (directory-only use, tests without a
//! broker). The directory is a JSON file the router re-reads when it changes, so all of
//! this takes effect without a restart.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use mirsal_bus::{
    Management,
    management::agency_permissions,
    topology::{self, DELIVER_EXCHANGE, QueueSettings},
};
use mirsal_envelope::{AgencyCode, pki::KeyKind};
use mirsal_router::directory::{AgencyEntry, AgencyStatus, Clearance, Directory};

use crate::{
    files,
    pki::{IssueRequest, PkiDir, PkiDirArgs},
};

/// Random bytes in a development broker password and in the adapter's HTTP token.
const SECRET_BYTES: usize = 32;
/// The broker's plain AMQP port (development).
const AMQP_PORT: u16 = 5672;
/// The broker's TLS port (production, client certificates).
const AMQPS_PORT: u16 = 5671;

#[derive(Debug, Subcommand)]
pub(crate) enum AgencyCommand {
    /// Onboard an agency: certificates, broker user and inbox, adapter bundle, directory.
    Add(AddArgs),
    /// Refuse the agency's submissions and stop delivering to it.
    Suspend(CodeArgs),
    /// Let a suspended agency send and receive again.
    Reactivate(CodeArgs),
    /// Remove the agency for good: its certificates are revoked and its broker user
    /// deleted; its inbox and archive are kept.
    Remove(RemoveArgs),
    /// List the agencies.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DirectoryArgs {
    /// The directory file the router reads.
    #[arg(long, env = "MIRSAL_DIRECTORY", default_value = "directory.json")]
    pub(crate) directory: PathBuf,
    #[command(flatten)]
    pub(crate) pki: PkiDirArgs,
}

/// Where the broker's management API is and who may use it.
#[derive(Debug, Clone, Args)]
pub(crate) struct BrokerArgs {
    /// The RabbitMQ vhost of the platform (created if it does not exist).
    #[arg(long, env = "MIRSAL_VHOST", default_value = "mirsal")]
    vhost: String,
    /// The RabbitMQ management API.
    #[arg(long, env = "MIRSAL_MANAGEMENT_URL", default_value = "http://127.0.0.1:15672")]
    management_url: String,
    /// A RabbitMQ administrator.
    #[arg(long, env = "MIRSAL_MANAGEMENT_USER", default_value = "guest")]
    management_user: String,
    /// The administrator's password.
    #[arg(long, env = "MIRSAL_MANAGEMENT_PASSWORD", default_value = "guest", hide_env_values = true)]
    management_password: String,
    /// Leave the broker alone: no management API call at all (add then creates no user
    /// and no inbox, and the bundle's URL has no password).
    #[arg(long)]
    no_broker: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClearanceArg {
    Unclassified,
    Restricted,
    Confidential,
    Secret,
}

impl From<ClearanceArg> for Clearance {
    fn from(value: ClearanceArg) -> Self {
        match value {
            ClearanceArg::Unclassified => Self::Unclassified,
            ClearanceArg::Restricted => Self::Restricted,
            ClearanceArg::Confidential => Self::Confidential,
            ClearanceArg::Secret => Self::Secret,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The agency code, e.g. MOF.
    code: String,
    /// The agency's name in English.
    #[arg(long)]
    name: String,
    /// The agency's name in Arabic.
    #[arg(long)]
    name_ar: Option<String>,
    /// The highest classification it may send or receive.
    #[arg(long, value_enum, default_value = "secret")]
    max_classification: ClearanceArg,
    /// The agency logs in with its TLS client certificate (production): its broker user
    /// gets no password, and the bundle's URL is amqps:// with EXTERNAL login.
    #[arg(long)]
    certificate_login: bool,
    /// The broker host written into the bundle's URL.
    #[arg(long, env = "MIRSAL_BROKER_HOST", default_value = "127.0.0.1")]
    broker_host: String,
    /// The broker port written into the bundle's URL [default: 5672, or 5671 with
    /// --certificate-login].
    #[arg(long, env = "MIRSAL_BROKER_PORT")]
    broker_port: Option<u16>,
    /// Where the agency's adapter serves its local HTTP API.
    #[arg(long, default_value = "127.0.0.1:8480")]
    http_listen: SocketAddr,
    /// The folder to write the adapter bundle to [default: bundles/CODE].
    #[arg(long)]
    bundle_dir: Option<PathBuf>,
    /// The inbox's delivery limit: must be the router's `broker.delivery_limit`, or the
    /// router's declaration of the inbox will not match.
    #[arg(long, env = "MIRSAL_DELIVERY_LIMIT", default_value_t = QueueSettings::default().delivery_limit,
          value_parser = clap::value_parser!(u32).range(1..))]
    delivery_limit: u32,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    dir: DirectoryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CodeArgs {
    code: String,
    #[command(flatten)]
    dir: DirectoryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    agency: CodeArgs,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    dir: DirectoryArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: AgencyCommand) -> Result<()> {
    match command {
        AgencyCommand::Add(args) => add(&args),
        AgencyCommand::Suspend(args) => set_status(&args, AgencyStatus::Suspended),
        AgencyCommand::Reactivate(args) => set_status(&args, AgencyStatus::Active),
        AgencyCommand::Remove(args) => remove(&args),
        AgencyCommand::List(args) => {
            let directory = Directory::load(&args.dir.directory)?;
            if args.json {
                let agencies: Vec<&AgencyEntry> = directory.agencies().collect();
                println!("{}", serde_json::to_string_pretty(&agencies)?);
            } else {
                let mut table = comfy_table::Table::new();
                table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header([
                    "CODE",
                    "NAME",
                    "الاسم",
                    "STATUS",
                    "CLEARANCE",
                ]);
                for agency in directory.agencies() {
                    table.add_row([
                        agency.code.clone(),
                        agency.name_en.clone(),
                        agency.name_ar.clone(),
                        format!("{:?}", agency.status).to_lowercase(),
                        format!("{:?}", agency.max_classification).to_lowercase(),
                    ]);
                }
                println!("{table}");
            }
            Ok(())
        }
    }
}

fn add(args: &AddArgs) -> Result<()> {
    let code = AgencyCode::new(args.code.as_str())?;
    if code.is_platform() {
        bail!("{code} is reserved for the platform");
    }
    refuse_if_registered(&args.dir.directory, &code)?;
    let runtime = crate::runtime()?;
    let broker = Broker::new(&args.broker)?;
    if let Some(broker) = &broker {
        runtime.block_on(broker.check())?;
    }

    let pki = PkiDir::new(&args.dir.pki.pki_dir);
    if ensure_certificates(&pki, &code, &args.name, args.name_ar.as_deref())? {
        println!("issued signing and sealing certificates for {code}");
    }

    let password = (!args.certificate_login).then(|| random_hex(SECRET_BYTES)).transpose()?;
    if let Some(broker) = &broker {
        runtime.block_on(async {
            broker.ensure_vhost().await?;
            broker.declare_inbox(&code, QueueSettings { delivery_limit: args.delivery_limit }).await?;
            broker.ensure_user(&code, password.as_deref()).await
        })?;
    }

    let port = args.broker_port.unwrap_or(if args.certificate_login { AMQPS_PORT } else { AMQP_PORT });
    let login = match (&broker, password.as_deref()) {
        (_, None) => Login::Certificate,
        (Some(_), Some(password)) => Login::Password(password),
        (None, Some(_)) => Login::PasswordUnknown,
    };
    let bundle = Bundle {
        code: &code,
        name: &args.name,
        broker_url: broker_url(&code, login, &args.broker_host, port, &args.broker.vhost),
        login,
        http_listen: args.http_listen,
    };
    let bundle_dir = args.bundle_dir.clone().unwrap_or_else(|| Path::new("bundles").join(code.as_str()));
    write_bundle(&bundle_dir, &bundle, &pki)?;
    println!(
        "wrote the adapter bundle to {} (it holds secrets: hand it over securely)",
        bundle_dir.display()
    );

    let entry =
        register(&args.dir, &code, &args.name, args.name_ar.as_deref(), args.max_classification.into())?;
    println!("registered {} ({}) in {}", entry.code, entry.name_en, args.dir.directory.display());
    Ok(())
}

fn remove(args: &RemoveArgs) -> Result<()> {
    let agency = &args.agency;
    let code = AgencyCode::new(agency.code.as_str())?;
    let runtime = crate::runtime()?;
    let broker = Broker::new(&args.broker)?;
    // Before anything changes: an unreachable broker should not leave a half-done removal.
    if let Some(broker) = &broker {
        runtime.block_on(broker.check())?;
    }
    set_status(agency, AgencyStatus::Removed)?;
    let pki = PkiDir::new(&agency.dir.pki.pki_dir);
    match pki.revoke(&code, Utc::now()) {
        Ok(count) => println!("revoked {count} certificate(s) of {code}"),
        Err(error) => eprintln!("note: {error:#}"),
    }
    if let Some(broker) = &broker {
        runtime.block_on(broker.remove_user(&code))?;
    }
    Ok(())
}

/// Refuses to add an agency that is registered and not removed.
fn refuse_if_registered(path: &Path, code: &AgencyCode) -> Result<()> {
    let directory = Directory::load(path)?;
    if let Some(existing) = directory.get(code.as_str())
        && existing.status != AgencyStatus::Removed
    {
        bail!("{code} is already registered ({:?}); use suspend or reactivate", existing.status);
    }
    Ok(())
}

/// Issues `code`'s certificates unless the PKI holds current ones; returns whether it did.
fn ensure_certificates(pki: &PkiDir, code: &AgencyCode, name: &str, name_ar: Option<&str>) -> Result<bool> {
    let index = pki.load_index()?;
    let current = index.certificates.iter().any(|e| e.code == code.as_str() && e.revoked_at.is_none());
    if current {
        return Ok(false);
    }
    let request = IssueRequest { name, name_ar, kind: KeyKind::EcP256, days: 825, force: true };
    pki.issue(code, &request, Utc::now())?;
    Ok(true)
}

/// Registers an agency with its current certificates; returns its directory entry.
fn register(
    dir: &DirectoryArgs,
    code: &AgencyCode,
    name: &str,
    name_ar: Option<&str>,
    clearance: Clearance,
) -> Result<AgencyEntry> {
    let pki = PkiDir::new(&dir.pki.pki_dir);
    // Read again: another `mirsal agency` may have run meanwhile.
    refuse_if_registered(&dir.directory, code)?;
    let mut directory = Directory::load(&dir.directory)?;
    let read = |usage| -> Result<String> {
        let (_, certificate) = pki.credentials(code, usage);
        String::from_utf8(files::read(&certificate)?).context("certificate is not PEM text")
    };
    let entry = AgencyEntry {
        code: code.to_string(),
        name_en: name.to_owned(),
        name_ar: name_ar.unwrap_or_default().to_owned(),
        status: AgencyStatus::Active,
        max_classification: clearance,
        signing_certificate: read("signing")?,
        sealing_certificate: read("sealing")?,
    };
    directory.upsert(entry.clone());
    directory.save(&dir.directory)?;
    Ok(entry)
}

fn set_status(args: &CodeArgs, status: AgencyStatus) -> Result<()> {
    let mut directory = Directory::load(&args.dir.directory)?;
    let Some(entry) = directory.get_mut(&args.code) else {
        bail!("{} is not in {}", args.code, args.dir.directory.display());
    };
    if entry.status == AgencyStatus::Removed && status != AgencyStatus::Removed {
        bail!("{} was removed; add it again instead", args.code);
    }
    entry.status = status;
    directory.save(&args.dir.directory)?;
    println!("{} is now {:?}", args.code, status);
    Ok(())
}

/// `bytes` random bytes from OpenSSL's CSPRNG, as lowercase hex.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buffer).context("cannot get random bytes from OpenSSL")?;
    Ok(hex::encode(buffer))
}

/// The broker steps of onboarding, through the management API, on one vhost.
#[derive(Debug)]
struct Broker {
    management: Management,
    vhost: String,
}

impl Broker {
    /// `None` with `--no-broker`.
    fn new(args: &BrokerArgs) -> Result<Option<Self>> {
        if args.no_broker {
            return Ok(None);
        }
        let management =
            Management::new(&args.management_url, &args.management_user, &args.management_password)?;
        Ok(Some(Self { management, vhost: args.vhost.clone() }))
    }

    /// Whether the API answers and the credentials work.
    async fn check(&self) -> Result<()> {
        self.management.overview().await.with_context(|| {
            format!(
                "the RabbitMQ management API at {} is not usable (or pass --no-broker to leave the broker alone)",
                self.management.base_url()
            )
        })?;
        Ok(())
    }

    /// Creates the vhost if it does not exist, and gives the management user full
    /// permissions on it if it has none (it needs them to declare queues there).
    async fn ensure_vhost(&self) -> Result<()> {
        let (management, vhost) = (&self.management, self.vhost.as_str());
        if !management.vhost_exists(vhost).await.context("looking up the vhost")? {
            management.put_vhost(vhost).await.with_context(|| format!("creating vhost {vhost}"))?;
            println!("created vhost {vhost}");
        }
        let admin = management.user();
        let permissions = management
            .user_permissions(admin)
            .await
            .with_context(|| format!("reading the permissions of {admin}"))?;
        if !permissions.iter().any(|p| p.vhost == vhost) {
            management
                .set_permissions(vhost, admin, ".*", ".*", ".*")
                .await
                .with_context(|| format!("giving {admin} permissions on vhost {vhost}"))?;
            println!("gave {admin} full permissions on vhost {vhost}");
        }
        Ok(())
    }

    /// Declares the exchanges, the ingress and dead-letter queues (no-ops for existing
    /// ones) and `code`'s inbox with its binding, with the router's own properties and
    /// arguments.
    async fn declare_inbox(&self, code: &AgencyCode, settings: QueueSettings) -> Result<()> {
        let (management, vhost) = (&self.management, self.vhost.as_str());
        for (name, kind) in &topology::EXCHANGES {
            management
                .put_exchange(vhost, name, topology::exchange_type(kind))
                .await
                .with_context(|| format!("declaring exchange {name} on vhost {vhost}"))?;
        }
        // The router's queues too, so that submissions and dead letters have somewhere to
        // go even before the router first runs.
        for (queue, arguments, exchange) in [
            (topology::INGRESS_QUEUE, topology::ingress_arguments(settings), topology::SUBMIT_EXCHANGE),
            (
                topology::DEAD_LETTER_QUEUE,
                topology::dead_letter_queue_arguments(),
                topology::DEAD_LETTER_EXCHANGE,
            ),
        ] {
            management
                .put_queue(vhost, queue, &topology::arguments_json(&arguments))
                .await
                .with_context(|| format!("declaring queue {queue} on vhost {vhost}"))?;
            management
                .put_binding(vhost, exchange, queue, "")
                .await
                .with_context(|| format!("binding {queue} to {exchange}"))?;
        }
        let queue = topology::inbox_queue(code.as_str());
        let arguments = topology::arguments_json(&topology::work_queue_arguments(settings));
        management.put_queue(vhost, &queue, &arguments).await.with_context(|| {
            format!(
                "declaring queue {queue} on vhost {vhost} (an existing queue with other arguments \
                 cannot be changed; is --delivery-limit the router's?)"
            )
        })?;
        management
            .put_binding(vhost, DELIVER_EXCHANGE, &queue, code.as_str())
            .await
            .with_context(|| format!("binding {queue} to {DELIVER_EXCHANGE}"))?;
        println!("declared {queue} (quorum) on vhost {vhost}, bound to {DELIVER_EXCHANGE} with key {code}");
        Ok(())
    }

    /// The user of an agency, or `None`; refuses to touch a user that is not one (it has
    /// tags, or it is the administrator running this).
    async fn agency_user(&self, code: &AgencyCode) -> Result<Option<mirsal_bus::management::UserInfo>> {
        if code.as_str() == self.management.user() {
            bail!("{code} is the management user itself; refusing to touch it");
        }
        match self.management.get_user(code.as_str()).await {
            Ok(user) if !user.tags.is_empty() => bail!(
                "the RabbitMQ user {code} exists with tags [{}]: it is not an agency's user; \
                 refusing to change it",
                user.tags.join(", ")
            ),
            Ok(user) => Ok(Some(user)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error).with_context(|| format!("looking up the RabbitMQ user {code}")),
        }
    }

    /// Creates (or resets) `code`'s user with no tags, `password` (`None`: certificate
    /// login only) and exactly the agency permissions on the vhost.
    async fn ensure_user(&self, code: &AgencyCode, password: Option<&str>) -> Result<()> {
        let (management, vhost) = (&self.management, self.vhost.as_str());
        let existed = self.agency_user(code).await?.is_some();
        if existed {
            let reset = if password.is_some() { "a new password" } else { "no password" };
            println!(
                "the RabbitMQ user {code} already exists: giving it {reset} and resetting its permissions"
            );
        }
        management.put_user(code.as_str(), password, "").await.with_context(|| {
            format!("{} the RabbitMQ user {code}", if existed { "resetting" } else { "creating" })
        })?;
        let (configure, write, read) = agency_permissions(code.as_str());
        management
            .set_permissions(vhost, code.as_str(), &configure, &write, &read)
            .await
            .with_context(|| format!("setting the permissions of {code} on vhost {vhost}"))?;
        if !existed {
            let login = if password.is_some() { "password login" } else { "certificate login, no password" };
            println!("created the RabbitMQ user {code} ({login})");
        }
        println!("{code} may write {write} and read {read} on vhost {vhost}, and configure nothing");
        let elsewhere: Vec<String> = management
            .user_permissions(code.as_str())
            .await
            .with_context(|| format!("reading the permissions of {code}"))?
            .into_iter()
            .filter(|p| p.vhost != vhost)
            .map(|p| p.vhost)
            .collect();
        if !elsewhere.is_empty() {
            eprintln!(
                "note: {code} also has permissions on vhost(s) {}, left as they are",
                elsewhere.join(", ")
            );
        }
        Ok(())
    }

    /// Clears `code`'s permissions on the vhost and deletes its user (unless it still has
    /// permissions on another vhost), closing its connections. Its inbox is kept.
    async fn remove_user(&self, code: &AgencyCode) -> Result<()> {
        let (management, vhost) = (&self.management, self.vhost.as_str());
        if self.agency_user(code).await?.is_none() {
            println!("there is no RabbitMQ user {code} (any more)");
            return Ok(());
        }
        match management.clear_permissions(vhost, code.as_str()).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => {
                return Err(error).with_context(|| format!("clearing the permissions of {code} on {vhost}"));
            }
        }
        let elsewhere: Vec<String> = management
            .user_permissions(code.as_str())
            .await
            .with_context(|| format!("reading the permissions of {code}"))?
            .into_iter()
            .map(|p| p.vhost)
            .collect();
        if elsewhere.is_empty() {
            management
                .delete_user(code.as_str())
                .await
                .with_context(|| format!("deleting the user {code}"))?;
            println!("deleted the RabbitMQ user {code}");
        } else {
            println!(
                "cleared the permissions of {code} on vhost {vhost}; kept its RabbitMQ user, which still has \
                 permissions on {}",
                elsewhere.join(", ")
            );
        }
        // Permissions are checked when a resource is first used on a channel: cut off
        // what is already open as well.
        let connections = management.list_connections().await.context("listing the connections")?;
        let mut closed = 0;
        for connection in connections {
            if connection.user == code.as_str() && (elsewhere.is_empty() || connection.vhost == vhost) {
                match management.close_connection(&connection.name).await {
                    Ok(()) => closed += 1,
                    Err(error) if error.is_not_found() => {}
                    Err(error) => {
                        // Deleting the user makes RabbitMQ close its connections too; one
                        // closing meanwhile answers 500. Only one that stays open is a
                        // failure.
                        if !closes_soon(management, &connection.name).await? {
                            return Err(error).with_context(|| format!("closing a connection of {code}"));
                        }
                    }
                }
            }
        }
        if closed > 0 {
            println!("closed {closed} connection(s) of {code}");
        }
        println!("kept {} and the router's archive", topology::inbox_queue(code.as_str()));
        Ok(())
    }
}

/// Whether connection `name` is gone within a few seconds.
async fn closes_soon(management: &Management, name: &str) -> Result<bool> {
    for _ in 0..25 {
        let connections = management.list_connections().await.context("listing the connections")?;
        if !connections.iter().any(|c| c.name == name) {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(false)
}

/// How the agency's adapter logs in to the broker.
#[derive(Debug, Clone, Copy)]
enum Login<'a> {
    /// Development: user and password in the URL.
    Password(&'a str),
    /// Development with `--no-broker`: nobody created the user, so there is no password
    /// to write.
    PasswordUnknown,
    /// Production: TLS client certificate, `EXTERNAL`, user = the certificate's CN.
    Certificate,
}

/// The adapter's AMQP URL, every part percent-encoded.
fn broker_url(code: &AgencyCode, login: Login<'_>, host: &str, port: u16, vhost: &str) -> String {
    let host =
        if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
    let (code, vhost) = (percent_encode(code.as_str()), percent_encode(vhost));
    match login {
        Login::Password(password) => {
            format!("amqp://{code}:{}@{host}:{port}/{vhost}", percent_encode(password))
        }
        Login::PasswordUnknown => format!("amqp://{code}@{host}:{port}/{vhost}"),
        Login::Certificate => format!("amqps://{host}:{port}/{vhost}?auth_mechanism=external"),
    }
}

/// Percent-encodes everything but the URL-unreserved characters, so `/` (the default
/// vhost) becomes `%2F` and a code such as `MOF-HR` stays readable.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// What goes into an agency's adapter bundle besides the files copied from the PKI.
#[derive(Debug)]
struct Bundle<'a> {
    code: &'a AgencyCode,
    name: &'a str,
    broker_url: String,
    login: Login<'a>,
    http_listen: SocketAddr,
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The bundle's `adapter.toml`. Paths are relative to the file's own folder.
fn adapter_toml(bundle: &Bundle<'_>) -> String {
    let mut broker = vec![];
    match bundle.login {
        Login::Certificate => {
            broker.push(format!(
                "# Log in with the TLS client certificate (EXTERNAL): its CN must be {}.",
                bundle.code
            ));
            broker.push(format!("url = {}", quoted(&bundle.broker_url)));
            broker.push(
                "tls_ca = \"broker-ca.pem\"            # the CA of the broker's TLS certificate".into(),
            );
            broker.push(format!(
                "tls_certificate = \"client.pem\"      # the agency's TLS client certificate, CN = {}",
                bundle.code
            ));
            broker.push("tls_key = \"client.key\"".into());
        }
        Login::Password(_) | Login::PasswordUnknown => {
            if matches!(bundle.login, Login::PasswordUnknown) {
                broker.push(
                    "# Written with --no-broker: create the broker user and put its password in the URL \
                     (amqp://CODE:PASSWORD@…)."
                        .into(),
                );
            }
            broker.push(format!("url = {}", quoted(&bundle.broker_url)));
            broker.push("# tls_ca = \"broker-ca.pem\"".into());
            broker.push("# tls_certificate = \"client.pem\"".into());
            broker.push("# tls_key = \"client.key\"".into());
        }
    }
    format!(
        "# Mirsal adapter for agency {code} — generated by `mirsal agency add`.\n\
         # Paths are relative to this file's folder. The file may hold the broker password: keep it private.\n\
         agency = {agency}\n\
         data_dir = \"data\"\n\
         \n\
         [broker]\n\
         {broker}\n\
         \n\
         [pki]\n\
         ca = \"ca.pem\"\n\
         crl = \"crl.pem\"\n\
         signing_key = \"signing.key\"\n\
         signing_certificate = \"signing.pem\"\n\
         sealing_key = \"sealing.key\"\n\
         sealing_certificate = \"sealing.pem\"\n\
         \n\
         [http]\n\
         listen = {listen}\n\
         token_file = \"http.token\"\n",
        code = bundle.code,
        agency = quoted(bundle.code.as_str()),
        broker = broker.join("\n"),
        listen = quoted(&bundle.http_listen.to_string()),
    )
}

/// The bundle's `README.txt`.
fn readme(bundle: &Bundle<'_>) -> String {
    let code = bundle.code;
    let mut text = format!(
        "Mirsal adapter bundle for agency {code} ({name}), written by `mirsal agency add` on {date}.\n\
         \n\
         THIS FOLDER HOLDS SECRETS: the agency's private keys, the adapter's HTTP token and, for\n\
         password login, the broker password in adapter.toml. Hand it over through a secure channel,\n\
         keep it readable only by the adapter's user (folder 0700, secrets 0600) and never commit it.\n\
         \n\
         Start the adapter with:  mirsal-adapter --config adapter.toml\n\
         \n\
         adapter.toml   the adapter's configuration; its paths are relative to this folder (SECRET)\n\
         signing.key    the agency's signing private key: signs every envelope it sends (SECRET)\n\
         signing.pem    the agency's signing certificate (CN = {code}), issued by the platform CA\n\
         sealing.key    the agency's sealing private key: opens letters sealed for it (SECRET)\n\
         sealing.pem    the agency's sealing certificate, which senders seal for\n\
         ca.pem         the platform CA: the trust anchor for every agency's and the platform's signatures\n\
         crl.pem        the platform CA's revocation list as of today; replace it with each new CRL the\n\
         \x20              platform team publishes (it is re-signed at least every 30 days)\n\
         http.token     the bearer token of the adapter's local HTTP API (SECRET)\n\
         data/          created by the adapter: its durable outbox and inbox; back it up\n",
        name = bundle.name,
        date = Utc::now().format("%Y-%m-%d"),
    );
    if matches!(bundle.login, Login::Certificate) {
        text.push_str(&format!(
            "\n\
             Not included, to add before the first start (from whoever issues the broker's TLS certificates):\n\
             broker-ca.pem  the CA that issued the broker's TLS server certificate\n\
             client.pem     the agency's TLS client certificate, with CN = {code} (the broker user's name)\n\
             client.key     its private key (SECRET, mode 0600)\n"
        ));
    }
    text
}

/// Writes the adapter bundle of `bundle.code` to `dir` (mode 0700): `adapter.toml`, the
/// agency's keys and certificates copied from the PKI, the CA and CRL, a fresh HTTP
/// token and a README. Secrets are 0600; an earlier bundle in `dir` is replaced.
fn write_bundle(dir: &Path, bundle: &Bundle<'_>, pki: &PkiDir) -> Result<()> {
    files::private_dir(dir)?;
    for usage in ["signing", "sealing"] {
        let (key, certificate) = pki.credentials(bundle.code, usage);
        files::write_secret(&dir.join(format!("{usage}.key")), &files::read(&key)?, true)?;
        files::write_public(&dir.join(format!("{usage}.pem")), &files::read(&certificate)?)?;
    }
    files::write_public(&dir.join("ca.pem"), &files::read(&pki.ca_certificate())?)?;
    files::write_public(&dir.join("crl.pem"), &files::read(&pki.crl())?)?;
    files::write_secret(&dir.join("http.token"), random_hex(SECRET_BYTES)?.as_bytes(), true)?;
    files::write_secret(&dir.join("adapter.toml"), adapter_toml(bundle).as_bytes(), true)?;
    files::write_public(&dir.join("README.txt"), readme(bundle).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle<'a>(code: &'a AgencyCode, login: Login<'a>, vhost: &str) -> Bundle<'a> {
        let port = if matches!(login, Login::Certificate) { AMQPS_PORT } else { AMQP_PORT };
        Bundle {
            code,
            name: "Ministry of Finance",
            broker_url: broker_url(code, login, "broker.example", port, vhost),
            login,
            http_listen: "127.0.0.1:8480".parse().unwrap(),
        }
    }

    #[test]
    fn the_adapter_toml_parses_with_every_key() {
        let code = AgencyCode::new("MOF-HR").unwrap();
        let text = adapter_toml(&bundle(&code, Login::Password("p4ss"), "/"));
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["agency"].as_str(), Some("MOF-HR"));
        assert_eq!(parsed["data_dir"].as_str(), Some("data"));
        assert_eq!(parsed["broker"]["url"].as_str(), Some("amqp://MOF-HR:p4ss@broker.example:5672/%2F"));
        assert!(parsed["broker"].get("tls_ca").is_none(), "{text}");
        let pki = &parsed["pki"];
        for (key, file) in [
            ("ca", "ca.pem"),
            ("crl", "crl.pem"),
            ("signing_key", "signing.key"),
            ("signing_certificate", "signing.pem"),
            ("sealing_key", "sealing.key"),
            ("sealing_certificate", "sealing.pem"),
        ] {
            assert_eq!(pki[key].as_str(), Some(file), "{key}");
        }
        assert_eq!(parsed["http"]["listen"].as_str(), Some("127.0.0.1:8480"));
        assert_eq!(parsed["http"]["token_file"].as_str(), Some("http.token"));
        assert!(text.starts_with("# Mirsal adapter for agency MOF-HR — generated by `mirsal agency add`."));
    }

    #[test]
    fn certificate_login_uses_tls_and_external() {
        let code = AgencyCode::new("MOF").unwrap();
        let text = adapter_toml(&bundle(&code, Login::Certificate, "mirsal"));
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let broker = &parsed["broker"];
        assert_eq!(
            broker["url"].as_str(),
            Some("amqps://broker.example:5671/mirsal?auth_mechanism=external")
        );
        assert_eq!(broker["tls_ca"].as_str(), Some("broker-ca.pem"));
        assert_eq!(broker["tls_certificate"].as_str(), Some("client.pem"));
        assert_eq!(broker["tls_key"].as_str(), Some("client.key"));
        let readme = readme(&bundle(&code, Login::Certificate, "mirsal"));
        assert!(readme.contains("client.pem"), "{readme}");
        assert!(readme.contains("SECRETS"), "{readme}");
    }

    #[test]
    fn urls_are_percent_encoded() {
        let code = AgencyCode::new("MOF").unwrap();
        assert_eq!(
            broker_url(&code, Login::Password("a/b@c"), "::1", 5672, "my vhost"),
            "amqp://MOF:a%2Fb%40c@[::1]:5672/my%20vhost"
        );
        assert_eq!(
            broker_url(&code, Login::PasswordUnknown, "h", 5672, "mirsal"),
            "amqp://MOF@h:5672/mirsal"
        );
        let text = adapter_toml(&bundle(&code, Login::PasswordUnknown, "mirsal"));
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["broker"]["url"].as_str(), Some("amqp://MOF@broker.example:5672/mirsal"));
    }

    #[test]
    fn secrets_are_long_random_hex() {
        let (a, b) = (random_hex(SECRET_BYTES).unwrap(), random_hex(SECRET_BYTES).unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
