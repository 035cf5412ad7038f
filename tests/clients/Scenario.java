// The client matrix's application scenario through pgjdbc (tests/clients.rs).
//
// Usage: java -cp postgresql.jar Scenario.java PORT tessera|postgres
//
// Prints one line per observation; tests/clients.rs runs it against Tessera and against a plain
// PostgreSQL and compares the outputs. prepareThreshold=1 makes pgjdbc use named server-side
// prepared statements from the first execution; batches, transactions and CopyManager too.
import java.io.StringReader;
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class Scenario {
    static final String P = "jv";

    static void out(Object... values) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            if (i > 0) b.append(" | ");
            b.append(values[i]);
        }
        System.out.println(b);
    }

    static String rows(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        List<String> all = new ArrayList<>();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) row.add(md.getColumnName(i) + "=" + rs.getString(i));
            all.add(row.toString());
        }
        return all.toString();
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/postgres?user=postgres&prepareThreshold=1";
        boolean tessera = args[1].equals("tessera");
        try (Connection c = DriverManager.getConnection(url); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + P + "_orders, " + P + "_customers");
            st.execute("CREATE TABLE " + P + "_customers (id int PRIMARY KEY, name text NOT NULL, country text)");
            st.execute("CREATE TABLE " + P + "_orders (customer_id int NOT NULL, id bigint NOT NULL, "
                    + "amount numeric(12,2), placed timestamptz, note text, PRIMARY KEY (customer_id, id))");
            if (tessera) {
                st.execute("SELECT create_reference_table('" + P + "_customers')");
                st.execute("SELECT create_distributed_table('" + P + "_orders', 'customer_id')");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + P + "_customers VALUES (?, ?, ?)")) {
                Object[][] customers = {{1, "Ana", "PT"}, {2, "Zoë", "FR"}, {3, "Łukasz", null}, {4, "Ngozi", "NG"}, {5, "山田", "JP"}};
                for (Object[] cu : customers) {
                    ps.setInt(1, (Integer) cu[0]);
                    ps.setString(2, (String) cu[1]);
                    ps.setString(3, (String) cu[2]);
                    ps.addBatch();
                }
                out("customers batch", Arrays.toString(ps.executeBatch()));
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + P + "_orders VALUES (?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 20; i++) {
                    ps.setInt(1, i % 5 + 1);
                    ps.setLong(2, i);
                    ps.setBigDecimal(3, new java.math.BigDecimal(i).multiply(new java.math.BigDecimal("1.25")));
                    ps.setTimestamp(4, new Timestamp(1709294400000L + i * 3600000L));
                    ps.setString(5, i % 3 == 0 ? null : "n" + i);
                    ps.addBatch();
                }
                out("orders batch", Arrays.toString(ps.executeBatch()));
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT id, amount, placed, note FROM " + P + "_orders WHERE customer_id = ? ORDER BY id")) {
                for (int customer : new int[] {3, 1, 3, 5}) {
                    ps.setInt(1, customer);
                    try (ResultSet rs = ps.executeQuery()) {
                        out("prepared", customer, rows(rs));
                    }
                }
            }
            try (ResultSet rs = st.executeQuery("SELECT c.name, count(*), sum(o.amount) FROM " + P + "_orders o JOIN "
                    + P + "_customers c ON c.id = o.customer_id GROUP BY c.name ORDER BY c.name")) {
                out("by customer", rows(rs));
            }

            c.setAutoCommit(false);
            st.executeUpdate("INSERT INTO " + P + "_orders (customer_id, id) VALUES (1, 1000)");
            out("in transaction", st.executeUpdate("UPDATE " + P + "_orders SET amount = 0 WHERE customer_id = 2"));
            c.rollback();
            out("updated", st.executeUpdate("UPDATE " + P + "_orders SET amount = amount + 1 WHERE id < 5"));
            Savepoint sp = c.setSavepoint();
            try {
                st.executeUpdate("INSERT INTO " + P + "_orders (customer_id, id) VALUES (4, 4)");
            } catch (SQLException e) {
                out("savepoint error", e.getSQLState());
                c.rollback(sp);
            }
            c.commit();
            c.setAutoCommit(true);
            try (ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM " + P + "_orders")) {
                out("after transactions", rows(rs));
            }

            CopyManager copy = ((PGConnection) c).getCopyAPI();
            StringBuilder data = new StringBuilder();
            for (int i = 100; i < 200; i++) data.append(i % 5 + 1).append('\t').append(i).append('\t').append(i / 4.0).append('\n');
            out("copy", copy.copyIn("COPY " + P + "_orders (customer_id, id, amount) FROM STDIN", new StringReader(data.toString())));
            try (ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM " + P + "_orders")) {
                out("after copy", rows(rs));
            }

            try {
                st.executeUpdate("INSERT INTO " + P + "_orders (customer_id, id) VALUES (3, 3)");
            } catch (SQLException e) {
                out("error", e.getSQLState(), e.getMessage().split("\n")[0]);
            }
            st.execute("SET TimeZone = 'Asia/Tokyo'");
            try (ResultSet rs = st.executeQuery("SELECT placed::text FROM " + P + "_orders WHERE customer_id = 1 AND id = 5")) {
                out("time zone", rows(rs));
            }
            st.execute("DROP TABLE " + P + "_orders, " + P + "_customers");
            out("done");
        }
    }
}
