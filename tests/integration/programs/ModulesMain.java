import java.lang.management.ManagementFactory;

/** What a program can see of the agent `workbench exec` starts in it: whether the diagnostic command's package is
 * open to the class path (the agent opens it to itself, and the agent is on the class path), and which modules the
 * boot layer has. */
public final class ModulesMain {
    public static void main(String[] args) {
        Module self = ModulesMain.class.getModule();
        System.out.println("sun.management open: " + ManagementFactory.class.getModule().isOpen("sun.management", self));
        System.out.println("boot modules: " + ModuleLayer.boot().modules().size());
    }
}
